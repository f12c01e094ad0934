import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import {
  cropRegion,
  type DecodedImage,
  decodeImage,
  detectorInput,
  ImageError,
  rotate180,
  textLineInput,
} from './image.ts';

/** Encodes raw pixels (`channels` bytes each, row-major) with sharp. */
function encode(pixels: number[], width: number, height: number, channels: 1 | 3 | 4) {
  return sharp(Buffer.from(pixels), { raw: { width, height, channels } });
}

/** A `width` × `height` image whose every pixel is `rgb`. */
function solid(width: number, height: number, rgb: [number, number, number]): DecodedImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = rgb[i % 3]!;
  return { width, height, data };
}

/** Pixel i is [i, i + 100, i + 200]: every pixel of a small image tells where it came from. */
function numbered(width: number, height: number): DecodedImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set([i, i + 100, i + 200], i * 3);
  return { width, height, data };
}

async function refusal(bytes: Uint8Array, maxPixels = 1_000_000): Promise<ImageError> {
  const error = await decodeImage(bytes, { maxPixels }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ImageError);
  return error as ImageError;
}

describe('decodeImage', () => {
  it('returns a PNG’s exact RGB pixels', async () => {
    const png = await encode([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30], 2, 2, 3).png().toBuffer();
    expect(await decodeImage(png, { maxPixels: 4 })).toEqual({
      width: 2,
      height: 2,
      data: new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]),
    });
  });

  it('flattens transparency onto white and widens grey to three channels', async () => {
    // Opaque red, transparent, black at alpha 128 (255 × 127/255 of white shows through), opaque.
    const rgba = await encode([255, 0, 0, 255, 0, 0, 0, 0, 0, 0, 0, 128, 10, 20, 30, 255], 2, 2, 4)
      .webp({ lossless: true })
      .toBuffer();
    expect((await decodeImage(rgba, { maxPixels: 4 })).data).toEqual(
      new Uint8Array([255, 0, 0, 255, 255, 255, 127, 127, 127, 10, 20, 30]),
    );
    const grey = await encode([0, 100, 200, 255], 2, 2, 1).png().toBuffer();
    expect((await decodeImage(grey, { maxPixels: 4 })).data).toEqual(
      new Uint8Array([0, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255]),
    );
  });

  it('applies EXIF orientation', async () => {
    // Orientation 6: stored 2 × 1 (red, blue), shown turned a quarter clockwise, so red on top.
    const png = await encode([255, 0, 0, 0, 0, 255], 2, 1, 3)
      .withMetadata({ orientation: 6 })
      .png()
      .toBuffer();
    expect(await decodeImage(png, { maxPixels: 2 })).toEqual({
      width: 1,
      height: 2,
      data: new Uint8Array([255, 0, 0, 0, 0, 255]),
    });
  });

  it('decodes JPEG', async () => {
    const jpeg = await encode(new Array(8 * 8 * 3).fill(128), 8, 8, 3)
      .jpeg({ quality: 100 })
      .toBuffer();
    expect(await decodeImage(jpeg, { maxPixels: 64 })).toEqual({
      width: 8,
      height: 8,
      data: solid(8, 8, [128, 128, 128]).data,
    });
  });

  it('refuses more pixels than the limit, from the header, and accepts exactly the limit', async () => {
    const png = await encode(new Array(11 * 10 * 3).fill(0), 11, 10, 3)
      .png()
      .toBuffer();
    const error = await refusal(png, 109);
    expect(error.reason).toBe('too-many-pixels');
    expect(error.message).toBe('the image has 11 × 10 pixels, more than the limit of 109');
    expect((await decodeImage(png, { maxPixels: 110 })).width).toBe(11);
  });

  it('refuses SVG, GIF and unknown bytes as unsupported before any decoder sees them', async () => {
    const svg = Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"><rect width="1" height="1"/></svg>',
    );
    const gif = await encode([1, 2, 3], 1, 1, 3).gif().toBuffer();
    for (const bytes of [svg, gif, Buffer.from('not an image')]) {
      const error = await refusal(bytes);
      expect(error.reason).toBe('unsupported-format');
      expect(error.message).toBe('the image is not one of the accepted formats (jpeg, png, webp)');
    }
  });

  it('refuses a truncated or garbled image as corrupt, with sharp’s error as the cause', async () => {
    const png = await encode([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30], 2, 2, 3).png().toBuffer();
    const truncated = await refusal(png.subarray(0, png.length - 20));
    expect(truncated.reason).toBe('corrupt');
    expect(truncated.message).toMatch(/^the png image cannot be decoded: /);
    expect(truncated.cause).toBeInstanceOf(Error);
    const garbled = await refusal(
      Buffer.concat([png.subarray(0, 8), Buffer.from('garbage after the signature')]),
    );
    expect(garbled.reason).toBe('corrupt');
    expect(garbled.message).toMatch(/^the png image's header cannot be read: /);
  });

  it('refuses a limit that is not a positive integer (sharp reads 0 as none)', async () => {
    await expect(decodeImage(new Uint8Array(), { maxPixels: 0 })).rejects.toThrow(RangeError);
  });
});

describe('detectorInput', () => {
  const normalisation = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] } as const;

  it('rounds each side to the nearest multiple of 32, at least 32, and says how to scale back', () => {
    const input = detectorInput(solid(100, 50, [0, 0, 0]), normalisation);
    // 100 / 32 = 3.1 → 96; 50 / 32 = 1.6 → 64.
    expect(input.dims).toEqual([1, 3, 64, 96]);
    expect(input.tensor).toHaveLength(3 * 64 * 96);
    expect([input.scaleX, input.scaleY]).toEqual([100 / 96, 50 / 64]);
    expect(detectorInput(solid(10, 10, [0, 0, 0]), normalisation).dims).toEqual([1, 3, 32, 32]);
  });

  it('scales the longer side down to limitSideLen', () => {
    expect(detectorInput(solid(2000, 1000, [0, 0, 0]), normalisation).dims).toEqual([1, 3, 480, 960]);
    // 300 × 1000 at half size is 150 × 500: 150 → 160, and 500 → 480, not 512, which is over the limit.
    expect(detectorInput(solid(300, 1000, [0, 0, 0]), { ...normalisation, limitSideLen: 500 }).dims).toEqual([
      1, 3, 480, 160,
    ]);
  });

  it('normalises per plane, BGR by default as PaddleOCR trains, RGB when asked', () => {
    const pixel = solid(32, 32, [255, 0, 51]);
    const plane = 32 * 32;
    const bgr = detectorInput(pixel, normalisation).tensor;
    // Plane 0 is blue (51 / 255 = 0.2) normalised with the first mean and std, and so on.
    expect(bgr[0]).toBeCloseTo((0.2 - 0.485) / 0.229, 6);
    expect(bgr[plane]).toBeCloseTo((0 - 0.456) / 0.224, 6);
    expect(bgr[2 * plane + plane - 1]).toBeCloseTo((1 - 0.406) / 0.225, 6);
    const rgb = detectorInput(pixel, { ...normalisation, channelOrder: 'rgb' }).tensor;
    expect(rgb[0]).toBeCloseTo((1 - 0.485) / 0.229, 6);
    expect(rgb[2 * plane]).toBeCloseTo((0.2 - 0.406) / 0.225, 6);
  });
});

describe('cropRegion', () => {
  it('copies the box’s pixels, right and bottom exclusive', () => {
    // 4 × 3: pixel (x, y) is number y × 4 + x.
    expect(cropRegion(numbered(4, 3), { x0: 1, y0: 1, x1: 3, y1: 3 })).toEqual({
      width: 2,
      height: 2,
      data: new Uint8Array([5, 105, 205, 6, 106, 206, 9, 109, 209, 10, 110, 210]),
    });
  });

  it('widens fractions to whole pixels and clamps to the image', () => {
    expect(cropRegion(numbered(4, 3), { x0: 2.5, y0: -7, x1: 99, y1: 0.2 })).toEqual({
      width: 2,
      height: 1,
      data: new Uint8Array([2, 102, 202, 3, 103, 203]),
    });
  });

  it('refuses a box outside the image', () => {
    expect(() => cropRegion(numbered(4, 3), { x0: 4, y0: 0, x1: 8, y1: 3 })).toThrow(
      /\(4, 0\)–\(8, 3\) lies outside the 4 × 3 image/,
    );
  });
});

describe('rotate180', () => {
  it('reverses the order of the pixels, keeping each one’s channels', () => {
    expect(rotate180(numbered(3, 1))).toEqual({
      width: 3,
      height: 1,
      data: new Uint8Array([2, 102, 202, 1, 101, 201, 0, 100, 200]),
    });
  });
});

describe('textLineInput', () => {
  /** One row of grey levels, as an image 1 pixel high. */
  const row = (...levels: number[]) => ({
    width: levels.length,
    height: 1,
    data: new Uint8Array(levels.flatMap((v) => [v, v, v])),
  });
  const normalised = (v: number) => (v / 255 - 0.5) / 0.5;

  it('scales to the height bilinearly, as cv2.resize does, and normalises to ±1', () => {
    // 2 × 1 → 4 × 2: source x = (x + 0.5) / 2 − 0.5 = −0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
    const { tensor, dims } = textLineInput([row(0, 255)], { height: 2, maxWidth: 100 });
    expect(dims).toEqual([1, 3, 2, 4]);
    const expected = [0, 64, 191, 255].map(normalised);
    for (let p = 0; p < 6; p++) {
      expect(Array.from(tensor.subarray(p * 4, p * 4 + 4))).toEqual(
        expected.map((v) => expect.closeTo(v, 6)),
      );
    }
  });

  it('pads each crop on the right to the widest, with padValue', () => {
    // Ratios 4 and 2 at height 2: 8 and 4 pixels wide; the second is padded by 4.
    const { tensor, dims } = textLineInput([row(255, 255, 255, 255), row(0, 0)], {
      height: 2,
      maxWidth: 100,
      padValue: -9,
    });
    expect(dims).toEqual([2, 3, 2, 8]);
    const second = tensor.subarray(3 * 2 * 8, 3 * 2 * 8 + 8);
    expect(Array.from(second)).toEqual([-1, -1, -1, -1, -9, -9, -9, -9]);
    expect(tensor[0]).toBe(1);
  });

  it('keeps the batch within [minWidth, maxWidth], squeezing a longer line', () => {
    const fixed = { height: 48, minWidth: 192, maxWidth: 192 };
    expect(textLineInput([row(0, 0)], fixed).dims).toEqual([1, 3, 48, 192]);
    const { tensor, dims } = textLineInput([row(...new Array(500).fill(0))], fixed);
    expect(dims).toEqual([1, 3, 48, 192]);
    // Squeezed, not cut: the last column is still the line's.
    expect(tensor[191]).toBe(-1);
  });

  it('refuses an empty batch', () => {
    expect(() => textLineInput([], { maxWidth: 10 })).toThrow(/at least one crop/);
  });
});
