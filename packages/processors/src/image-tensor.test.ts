import { describe, expect, it } from 'vitest';
import type { DecodedImage } from './image.ts';
import { imageTensor } from './image-tensor.ts';

/** A width × height image whose every pixel is `rgb`. */
function solid(width: number, height: number, rgb: [number, number, number]): DecodedImage {
  const data = new Uint8Array(width * height * 3);
  for (let p = 0; p < width * height; p++) data.set(rgb, p * 3);
  return { width, height, data };
}

describe('imageTensor', () => {
  it('stretches to the size, normalises (byte / 255 − mean) / std per channel, NCHW in RGB order', () => {
    const { data, shape } = imageTensor(solid(4, 2, [255, 0, 51]), {
      width: 2,
      height: 2,
      mean: [0.5, 0, 0.2],
      std: [0.5, 1, 0.1],
    });
    expect(shape).toEqual([1, 3, 2, 2]);
    const planes = [...data].map((v) => Math.round(v * 1e6) / 1e6);
    expect(planes).toEqual([1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('writes NHWC and BGR when asked', () => {
    const { data, shape } = imageTensor(solid(1, 1, [255, 0, 0]), {
      width: 1,
      height: 1,
      layout: 'nhwc',
      channelOrder: 'bgr',
    });
    expect(shape).toEqual([1, 1, 1, 3]);
    expect([...data]).toEqual([0, 0, 1]);
  });

  it('contain: the whole image inside the size, centred, the rest padded', () => {
    // 4 × 2 white into 4 × 4: scaled to 4 × 2, one padded row above and below.
    const { data } = imageTensor(solid(4, 2, [255, 255, 255]), { width: 4, height: 4, fit: 'contain' });
    const red = [...data.subarray(0, 16)];
    expect(red).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0]);
  });

  it('cover: the size filled, the overflow cropped at the centre', () => {
    // 4 × 2 whose left half is black and right half white, into 2 × 2: the centre two columns.
    const image = solid(4, 2, [0, 0, 0]);
    for (const p of [2, 3, 6, 7]) image.data.set([255, 255, 255], p * 3);
    const { data } = imageTensor(image, { width: 2, height: 2, fit: 'cover' });
    expect([...data.subarray(0, 4)]).toEqual([0, 1, 0, 1]);
  });
});
