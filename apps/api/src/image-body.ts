/**
 * A raw image body (`Content-Type: image/*`): the bytes become the one input of a model or pipeline
 * that takes encoded bytes (`uint8`, shape [-1]), as if sent as that tensor in MessagePack. Decoding
 * the image is the pipeline's own first step (docs/pipelines.md), not the API's.
 */
import {
  type InferRequestBody,
  type InputLimits,
  PayloadTooLargeError,
  UnsupportedMediaTypeError,
} from '@inferq/protocol';
import type { Servable } from './catalog.ts';

/** The media types a raw body may have: any image type (the pipeline's decoder says which it reads). */
export function isImageMediaType(contentType: string | undefined): boolean {
  const type = (contentType?.split(';', 1)[0] ?? '').trim().toLowerCase();
  return /^image\/[a-z0-9.+-]+$/.test(type);
}

/** The infer body a raw image body stands for; 415 when the model takes no such input. */
export function imageBody(bytes: Uint8Array, model: Servable, limits: InputLimits): InferRequestBody {
  const [input, ...others] = model.signature.inputs;
  if (input === undefined || others.length > 0 || input.dtype !== 'uint8' || input.shape.length !== 1) {
    const takes = model.signature.inputs
      .map((i) => `'${i.name}' ${i.dtype} [${i.shape.join(', ')}]`)
      .join(', ');
    throw new UnsupportedMediaTypeError(
      `model '${model.name}' takes ${takes || 'no input'}; an image body is for a model or pipeline whose one input is uint8 bytes [-1]: send JSON or MessagePack instead`,
    );
  }
  if (bytes.byteLength > limits.maxElementsPerTensor) {
    throw new PayloadTooLargeError(
      `the image has ${bytes.byteLength} bytes, more than the ${limits.maxElementsPerTensor} elements a tensor may have (MAX_TENSOR_ELEMENTS)`,
    );
  }
  return { inputs: { [input.name]: { dtype: 'uint8', shape: [bytes.byteLength], data: bytes } } };
}
