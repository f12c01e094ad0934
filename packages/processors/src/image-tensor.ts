/**
 * A decoded image to a vision model's input, for the common case a user needs no code for: resized
 * to the model's size (stretched, or fitted inside and padded, or filling it and cropped at the
 * centre), normalised per channel, in the channel order and layout the model was trained with.
 */
import {
  type ChannelOrder,
  type ChannelValues,
  cropRegion,
  type DecodedImage,
  resizeImage,
} from './image.ts';

export type ImageFit = 'stretch' | 'contain' | 'cover';
export type ImageLayout = 'nchw' | 'nhwc';

export interface ImageTensorOptions {
  width: number;
  height: number;
  /**
   * `stretch`: to the size exactly, the aspect ratio lost; `contain`: the whole image inside it,
   * centred, the rest padded with `padValue`; `cover`: the size filled, the overflow cropped at the
   * centre (a classifier's usual resize-then-centre-crop).
   */
  fit?: ImageFit;
  /** Applied to byte / 255, per channel in `channelOrder` (default 0 and 1: values in [0, 1]). */
  mean?: ChannelValues;
  std?: ChannelValues;
  channelOrder?: ChannelOrder;
  layout?: ImageLayout;
  /** What fills `contain`'s padding, before normalisation, as a byte (default 0: black). */
  padValue?: number;
}

/** The image as a float32 tensor of one item: [1, 3, H, W] (nchw) or [1, H, W, 3] (nhwc). */
export function imageTensor(
  image: DecodedImage,
  options: ImageTensorOptions,
): { data: Float32Array; shape: [number, number, number, number] } {
  const { width, height, fit = 'stretch', layout = 'nchw', channelOrder = 'rgb', padValue = 0 } = options;
  const mean = perChannel(options.mean ?? 0);
  const std = perChannel(options.std ?? 1);
  const canvas = fitted(image, width, height, fit, padValue);
  const sources = channelOrder === 'bgr' ? [2, 1, 0] : [0, 1, 2];
  const data = new Float32Array(width * height * 3);
  const plane = width * height;
  for (let c = 0; c < 3; c++) {
    const source = sources[c]!;
    const scale = 1 / (255 * std[c]!);
    const offset = mean[c]! / std[c]!;
    for (let p = 0; p < plane; p++) {
      const value = canvas.data[p * 3 + source]! * scale - offset;
      if (layout === 'nchw') data[c * plane + p] = value;
      else data[p * 3 + c] = value;
    }
  }
  return { data, shape: layout === 'nchw' ? [1, 3, height, width] : [1, height, width, 3] };
}

function perChannel(values: ChannelValues): readonly [number, number, number] {
  return typeof values === 'number' ? [values, values, values] : values;
}

/** The image at exactly width × height, as `fit` says. */
function fitted(
  image: DecodedImage,
  width: number,
  height: number,
  fit: ImageFit,
  padValue: number,
): DecodedImage {
  if (fit === 'stretch') return resizeImage(image, width, height);
  const scale =
    fit === 'contain'
      ? Math.min(width / image.width, height / image.height)
      : Math.max(width / image.width, height / image.height);
  const scaledWidth = Math.max(1, Math.round(image.width * scale));
  const scaledHeight = Math.max(1, Math.round(image.height * scale));
  const scaled = resizeImage(image, scaledWidth, scaledHeight);
  if (fit === 'cover') {
    const x0 = Math.floor((scaledWidth - width) / 2);
    const y0 = Math.floor((scaledHeight - height) / 2);
    return cropRegion(scaled, { x0, y0, x1: x0 + width, y1: y0 + height });
  }
  const canvas = new Uint8Array(width * height * 3).fill(padValue);
  const left = Math.floor((width - scaledWidth) / 2);
  const top = Math.floor((height - scaledHeight) / 2);
  for (let y = 0; y < scaledHeight; y++) {
    canvas.set(
      scaled.data.subarray(y * scaledWidth * 3, (y + 1) * scaledWidth * 3),
      ((top + y) * width + left) * 3,
    );
  }
  return { width, height, data: canvas };
}
