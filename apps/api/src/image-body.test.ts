import {
  DEFAULT_INPUT_LIMITS,
  type ModelSignature,
  PayloadTooLargeError,
  UnsupportedMediaTypeError,
} from '@inferq/protocol';
import { describe, expect, it } from 'vitest';
import { imageBody, isImageMediaType } from './image-body.ts';
import { servable } from './test-support.ts';

const bytesInput: ModelSignature = {
  inputs: [{ name: 'image', dtype: 'uint8', shape: [-1] }],
  outputs: [{ name: 'text', dtype: 'string', shape: [-1] }],
};

describe('raw image bodies', () => {
  it('recognises image/* content types, parameters and case aside, and nothing else', () => {
    expect(['image/png', 'IMAGE/JPEG; q=1', 'image/webp', 'image/svg+xml'].map(isImageMediaType)).toEqual([
      true,
      true,
      true,
      true,
    ]);
    expect(['application/json', 'text/plain', 'image', 'image/', undefined].map(isImageMediaType)).toEqual([
      false,
      false,
      false,
      false,
      false,
    ]);
  });

  it('makes the bytes the one uint8 [-1] input, without copying them', () => {
    const bytes = new Uint8Array([0x89, 0x50, 0x4e, 0x47]);
    const body = imageBody(bytes, servable(bytesInput), DEFAULT_INPUT_LIMITS);
    expect(body).toEqual({ inputs: { image: { dtype: 'uint8', shape: [4], data: bytes } } });
    expect(body.inputs.image!.data).toBe(bytes);
  });

  it('refuses a model that takes other inputs (415) and bytes over the tensor cap (413)', () => {
    const floats = servable({ inputs: [{ name: 'x', dtype: 'float32', shape: [-1, 4] }], outputs: [] });
    expect(() => imageBody(new Uint8Array(4), floats, DEFAULT_INPUT_LIMITS)).toThrow(
      new UnsupportedMediaTypeError(
        "model 'm' takes 'x' float32 [-1, 4]; an image body is for a model or pipeline whose one input is uint8 bytes [-1]: send JSON or MessagePack instead",
      ),
    );
    const limits = { ...DEFAULT_INPUT_LIMITS, maxElementsPerTensor: 3 };
    expect(() => imageBody(new Uint8Array(4), servable(bytesInput), limits)).toThrow(
      new PayloadTooLargeError(
        'the image has 4 bytes, more than the 3 elements a tensor may have (MAX_TENSOR_ELEMENTS)',
      ),
    );
  });
});
