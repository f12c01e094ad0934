import { parsePipelineFile } from '@inferq/pipeline';
import { BUILTIN_PROCESSORS } from '@inferq/processors/catalog';
import { InvalidImageError, PayloadTooLargeError, UnsupportedMediaTypeError } from '@inferq/protocol';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { Servable } from './catalog.ts';
import { checkPipelineImages } from './pipeline-images.ts';
import { servable } from './test-support.ts';

/** A pipeline that decodes its `image` input (at most `maxPixels`) and answers the pixels. */
function decoding(maxPixels: number): Servable {
  const spec = parsePipelineFile(
    {
      inputs: [{ name: 'image', dtype: 'uint8', shape: [-1] }],
      outputs: [{ name: 'pixels', dtype: 'uint8', shape: [-1, -1, 3], from: 'decode.image' }],
      steps: [
        { name: 'decode', processor: 'image.decode', inputs: { image: 'image' }, options: { maxPixels } },
      ],
    },
    '/models/p/1/pipeline.json',
    { processors: (name) => BUILTIN_PROCESSORS.get(name) },
  );
  const signature = {
    inputs: spec.inputs,
    outputs: [{ name: 'pixels', dtype: 'uint8' as const, shape: [-1, -1, 3] }],
  };
  return servable(signature, {}, { name: 'p', path: '/models/p/1/pipeline.json', pipeline: spec });
}

const body = (bytes: Uint8Array) => ({
  inputs: { image: { dtype: 'uint8' as const, shape: [bytes.length], data: bytes } },
});
const png = (width: number, height: number) =>
  sharp({ create: { width, height, channels: 3, background: '#ffffff' } })
    .png()
    .toBuffer();

describe("a pipeline's images, checked at submit", () => {
  it('passes an image the decode step can read, without decoding its pixels', async () => {
    await expect(checkPipelineImages(body(await png(10, 10)), decoding(100))).resolves.toBeUndefined();
  });

  it('refuses bytes that are no image (415), a header that cannot be read (422), too many pixels (413)', async () => {
    const header = (await png(10, 10)).subarray(0, 16);
    await expect(checkPipelineImages(body(Buffer.from('text')), decoding(100))).rejects.toThrow(
      new UnsupportedMediaTypeError(
        "input 'image': the image is not one of the accepted formats (jpeg, png, webp)",
      ),
    );
    await expect(checkPipelineImages(body(header), decoding(100))).rejects.toBeInstanceOf(InvalidImageError);
    await expect(checkPipelineImages(body(await png(11, 10)), decoding(100))).rejects.toThrow(
      new PayloadTooLargeError("input 'image': the image has 11 × 10 pixels, more than the limit of 100"),
    );
  });
});
