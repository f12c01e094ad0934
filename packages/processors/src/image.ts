/**
 * The image side of an OCR pipeline: untrusted bytes → RGB pixels (sharp, which is libvips), and
 * pixels → the tensors PaddleOCR's detector, direction classifier and recogniser take. Everything
 * after decoding is synchronous and plain JavaScript: resizing is bilinear with OpenCV's pixel-centre
 * convention (`cv2.resize`'s INTER_LINEAR, which PaddleOCR uses), so the models see what they were
 * trained on rather than what another resampling kernel makes of it.
 */
import sharp from 'sharp';

/**
 * The formats decodeImage accepts. Any other is refused before a decoder sees it: SVG, for one, is a
 * document that can ask for files and fonts.
 */
export const IMAGE_FORMATS = ['jpeg', 'png', 'webp'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

/** Pixels, row-major, 3 bytes each (RGB), no alpha. */
export interface DecodedImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export type ImageErrorReason = 'corrupt' | 'unsupported-format' | 'too-many-pixels';

/** Why an image's bytes were refused; the message names the problem. */
export class ImageError extends Error {
  readonly reason: ImageErrorReason;

  constructor(reason: ImageErrorReason, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ImageError';
    this.reason = reason;
  }
}

/** The format the first bytes announce, when it is one of IMAGE_FORMATS. */
function sniffFormat(bytes: Uint8Array): ImageFormat | undefined {
  const startsWith = (signature: number[], at = 0) => signature.every((byte, i) => bytes[at + i] === byte);
  if (startsWith([0xff, 0xd8, 0xff])) return 'jpeg';
  if (startsWith([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  // RIFF, a 4-byte length, WEBP.
  if (startsWith([0x52, 0x49, 0x46, 0x46]) && startsWith([0x57, 0x45, 0x42, 0x50], 8)) return 'webp';
  return undefined;
}

const errorMessage = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** What an image's header says, checked: its format and size. */
export interface ImageHeader {
  format: ImageFormat;
  width: number;
  height: number;
}

/**
 * Reads and checks an image's header without decoding a pixel (the API's check of a pipeline's image
 * at submit): throws ImageError 'unsupported-format' for bytes that are not one of IMAGE_FORMATS,
 * 'corrupt' for a header that cannot be read, 'too-many-pixels' for more than `limits.maxPixels`.
 */
export async function inspectImage(bytes: Uint8Array, limits: { maxPixels: number }): Promise<ImageHeader> {
  const { maxPixels } = limits;
  // sharp reads a limitInputPixels of 0 as "no limit".
  if (!Number.isSafeInteger(maxPixels) || maxPixels < 1) {
    throw new RangeError(`maxPixels must be a positive integer, not ${maxPixels}`);
  }
  const sniffed = sniffFormat(bytes);
  if (sniffed === undefined) {
    throw new ImageError(
      'unsupported-format',
      `the image is not one of the accepted formats (${IMAGE_FORMATS.join(', ')})`,
    );
  }
  let metadata: sharp.Metadata;
  try {
    // The header only: no pixel is decoded, so no limit is needed yet.
    metadata = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (error) {
    throw new ImageError('corrupt', `the ${sniffed} image's header cannot be read: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  if (metadata.format !== sniffed) {
    throw new ImageError(
      'unsupported-format',
      `the image starts as ${sniffed} but reads as ${metadata.format}`,
    );
  }
  const { width, height } = metadata;
  if (width * height > maxPixels) {
    throw new ImageError(
      'too-many-pixels',
      `the image has ${width} × ${height} pixels, more than the limit of ${maxPixels}`,
    );
  }
  return { format: sniffed, width, height };
}

/**
 * Decodes JPEG, PNG or WebP bytes to RGB: EXIF orientation applied, transparency flattened onto
 * white, 16-bit and grey images brought to 8-bit sRGB. Throws ImageError, never sharp's own errors:
 * 'unsupported-format' for bytes that are not one of IMAGE_FORMATS, 'too-many-pixels' for more than
 * `limits.maxPixels` (checked on the header, before any pixel is decoded), 'corrupt' for the rest.
 */
export async function decodeImage(bytes: Uint8Array, limits: { maxPixels: number }): Promise<DecodedImage> {
  const { maxPixels } = limits;
  const { format: sniffed } = await inspectImage(bytes, limits);
  try {
    const { data, info } = await sharp(bytes, {
      limitInputPixels: maxPixels,
      sequentialRead: true,
      failOn: 'warning',
    })
      .autoOrient()
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
      throw new Error(
        `decoded to ${info.channels} channels, ${data.length} bytes for ${info.width} × ${info.height}`,
      );
    }
    return {
      width: info.width,
      height: info.height,
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
    };
  } catch (error) {
    // The header check above makes this unlikely; libvips still enforces the limit on the pixels it decodes.
    if (/exceeds pixel limit/.test(errorMessage(error))) {
      throw new ImageError('too-many-pixels', `the image has more than ${maxPixels} pixels`, {
        cause: error,
      });
    }
    throw new ImageError('corrupt', `the ${sniffed} image cannot be decoded: ${errorMessage(error)}`, {
      cause: error,
    });
  }
}

/**
 * Channel order of a tensor's planes. PaddleOCR's models were trained on OpenCV's BGR, with the mean
 * and std lists applied in that order (so the first, ImageNet's red 0.485, goes to blue).
 */
export type ChannelOrder = 'rgb' | 'bgr';

/** One value for every channel, or one per plane in the tensor's channel order. */
export type ChannelValues = number | readonly [number, number, number];

/** A float32 image batch, NCHW. */
export interface ImageTensor {
  tensor: Float32Array;
  dims: [n: number, channels: 3, height: number, width: number];
}

/**
 * Resizes with cv2.resize's INTER_LINEAR: source coordinate (x + 0.5) × scale − 0.5, clamped at the
 * edges, and the result rounded to bytes as OpenCV stores it.
 */
export function resizeImage(image: DecodedImage, width: number, height: number): DecodedImage {
  if (width === image.width && height === image.height) return image;
  const taps = (to: number, from: number) => {
    const first = new Int32Array(to);
    const weight = new Float64Array(to);
    for (let i = 0; i < to; i++) {
      const at = (i + 0.5) * (from / to) - 0.5;
      let low = Math.floor(at);
      let w = at - low;
      if (low < 0) [low, w] = [0, 0];
      if (low >= from - 1) [low, w] = [from - 1, 0];
      first[i] = low;
      weight[i] = w;
    }
    return { first, weight };
  };
  const xs = taps(width, image.width);
  const ys = taps(height, image.height);
  const src = image.data;
  const stride = image.width * 3;
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const top = ys.first[y]! * stride;
    const bottom = Math.min(ys.first[y]! + 1, image.height - 1) * stride;
    const wy = ys.weight[y]!;
    for (let x = 0; x < width; x++) {
      const left = xs.first[x]! * 3;
      const right = Math.min(xs.first[x]! + 1, image.width - 1) * 3;
      const wx = xs.weight[x]!;
      for (let c = 0; c < 3; c++) {
        const upper = src[top + left + c]! * (1 - wx) + src[top + right + c]! * wx;
        const lower = src[bottom + left + c]! * (1 - wx) + src[bottom + right + c]! * wx;
        out[(y * width + x) * 3 + c] = Math.round(upper * (1 - wy) + lower * wy);
      }
    }
  }
  return { width, height, data: out };
}

const perPlane = (values: ChannelValues): readonly [number, number, number] =>
  typeof values === 'number' ? [values, values, values] : values;

/**
 * Writes `image` into item `item` of an NCHW tensor whose planes are `width` wide (the image may be
 * narrower: the rest of each row is left as it is), normalised to (byte / 255 − mean) / std.
 */
function writePlanes(
  tensor: Float32Array,
  item: number,
  width: number,
  image: DecodedImage,
  options: { mean: ChannelValues; std: ChannelValues; channelOrder: ChannelOrder },
): void {
  const mean = perPlane(options.mean);
  const std = perPlane(options.std);
  const plane = image.height * width;
  // Plane p holds source channel sources[p] (0 red, 2 blue).
  const sources = options.channelOrder === 'bgr' ? [2, 1, 0] : [0, 1, 2];
  for (let p = 0; p < 3; p++) {
    const base = (item * 3 + p) * plane;
    const source = sources[p]!;
    const scale = 1 / (255 * std[p]!);
    const offset = mean[p]! / std[p]!;
    for (let y = 0; y < image.height; y++) {
      for (let x = 0; x < image.width; x++) {
        tensor[base + y * width + x] = image.data[(y * image.width + x) * 3 + source]! * scale - offset;
      }
    }
  }
}

export interface DetectorInputOptions {
  /** The longer side is scaled down to at most this (PaddleOCR's det_limit_side_len, 960). */
  limitSideLen?: number;
  /** Each side becomes the nearest multiple of this, at least one (32: the detector downsamples 32×). */
  multiple?: number;
  /** Per plane, in `channelOrder`: PP-OCR det's are [0.485, 0.456, 0.406] and [0.229, 0.224, 0.225]. */
  mean: ChannelValues;
  std: ChannelValues;
  /** 'bgr' unless said otherwise: PaddleOCR's. */
  channelOrder?: ChannelOrder;
}

export interface DetectorInput extends ImageTensor {
  /** Source pixels per detector-map pixel, horizontally and vertically. */
  scaleX: number;
  scaleY: number;
}

/**
 * A DB text detector's input (PaddleOCR's DetResizeForTest, limit type 'max', then NormalizeImage):
 * scaled so the longer side is at most limitSideLen, each side then rounded to a multiple, normalised
 * per channel, one item NCHW. The detector's probability map has the input's size, so scaleX and
 * scaleY also map its coordinates back to the source.
 */
export function detectorInput(image: DecodedImage, options: DetectorInputOptions): DetectorInput {
  const { limitSideLen = 960, multiple = 32, channelOrder = 'bgr' } = options;
  const ratio = Math.min(1, limitSideLen / Math.max(image.width, image.height));
  // Python's int() then round(), as PaddleOCR does; never past limitSideLen, should that not be a multiple.
  const most = Math.floor(limitSideLen / multiple);
  const side = (length: number) =>
    multiple * Math.max(1, Math.min(most, Math.round(Math.trunc(length * ratio) / multiple)));
  const width = side(image.width);
  const height = side(image.height);
  const tensor = new Float32Array(3 * height * width);
  writePlanes(tensor, 0, width, resizeImage(image, width, height), { ...options, channelOrder });
  return { tensor, dims: [1, 3, height, width], scaleX: image.width / width, scaleY: image.height / height };
}

/**
 * The pixels of a box in the image's coordinates (right and bottom exclusive; fractions widen it to
 * whole pixels), clamped to the image. Throws when nothing of it lies within the image.
 */
export function cropRegion(
  image: DecodedImage,
  box: { x0: number; y0: number; x1: number; y1: number },
): DecodedImage {
  const clamp = (value: number, max: number) => Math.min(max, Math.max(0, value));
  const x0 = clamp(Math.floor(box.x0), image.width);
  const y0 = clamp(Math.floor(box.y0), image.height);
  const x1 = clamp(Math.ceil(box.x1), image.width);
  const y1 = clamp(Math.ceil(box.y1), image.height);
  if (x1 <= x0 || y1 <= y0) {
    const region = `(${box.x0}, ${box.y0})–(${box.x1}, ${box.y1})`;
    throw new RangeError(`the region ${region} lies outside the ${image.width} × ${image.height} image`);
  }
  const width = x1 - x0;
  const data = new Uint8Array(width * (y1 - y0) * 3);
  for (let y = y0; y < y1; y++) {
    const from = (y * image.width + x0) * 3;
    data.set(image.data.subarray(from, from + width * 3), (y - y0) * width * 3);
  }
  return { width, height: y1 - y0, data };
}

/** The image turned upside down: a text line the direction classifier calls '180'. */
export function rotate180(image: DecodedImage): DecodedImage {
  const pixels = image.width * image.height;
  const data = new Uint8Array(pixels * 3);
  for (let i = 0, j = (pixels - 1) * 3; i < pixels * 3; i += 3, j -= 3) {
    data[j] = image.data[i]!;
    data[j + 1] = image.data[i + 1]!;
    data[j + 2] = image.data[i + 2]!;
  }
  return { width: image.width, height: image.height, data };
}

export interface TextLineInputOptions {
  /** Every crop is scaled to this height (PP-OCR rec and cls: 48). */
  height?: number;
  /** The batch's width at most: a longer line is squeezed to it. */
  maxWidth: number;
  /** The batch's width at least (PaddleOCR's rec: 320; cls: 192, as is its maxWidth). */
  minWidth?: number;
  /** (byte / 255 − mean) / std, per plane in channelOrder; PaddleOCR's rec and cls: 0.5 and 0.5. */
  mean?: ChannelValues;
  std?: ChannelValues;
  /** What fills each row right of a narrower crop, in normalised units (PaddleOCR's: 0). */
  padValue?: number;
  /** 'bgr' unless said otherwise: PaddleOCR's. */
  channelOrder?: ChannelOrder;
}

/**
 * A batch of text lines for a recogniser or direction classifier (PaddleOCR's resize_norm_img): each
 * crop scaled to `height` keeping its aspect ratio (width ⌈height × w / h⌉, squeezed to the batch's
 * width when longer), normalised, left-aligned and padded on the right to the batch's width: the
 * widest crop's, within [minWidth, maxWidth].
 */
export function textLineInput(crops: readonly DecodedImage[], options: TextLineInputOptions): ImageTensor {
  const {
    height = 48,
    maxWidth,
    minWidth = 1,
    mean = 0.5,
    std = 0.5,
    padValue = 0,
    channelOrder = 'bgr',
  } = options;
  if (crops.length === 0) throw new RangeError('a text-line batch needs at least one crop');
  const scaledWidths = crops.map((crop) => Math.max(1, Math.ceil((height * crop.width) / crop.height)));
  const width = Math.min(maxWidth, Math.max(minWidth, ...scaledWidths));
  const tensor = new Float32Array(crops.length * 3 * height * width).fill(padValue);
  crops.forEach((crop, item) => {
    const scaled = resizeImage(crop, Math.min(width, scaledWidths[item]!), height);
    writePlanes(tensor, item, width, scaled, { mean, std, channelOrder });
  });
  return { tensor, dims: [crops.length, 3, height, width] };
}
