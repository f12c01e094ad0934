/**
 * A pipeline whose first step decodes an image checks the image's header at submit: an image it could
 * never decode is the client's mistake, answered at once (415, 413 or 422), not a request that fails
 * in a worker. Decoding the pixels stays the pipeline's own step (a truncated image whose header reads
 * still ends `failed`, naming the problem).
 */
import { DEFAULT_MAX_PIXELS, ImageError, inspectImage } from '@inferq/processors';
import {
  type InferqError,
  type InferRequestBody,
  InvalidImageError,
  PayloadTooLargeError,
  UnsupportedMediaTypeError,
} from '@inferq/protocol';
import type { Servable } from './catalog.ts';

/** Checks every pipeline input an `image.decode` step reads directly; throws the client error. */
export async function checkPipelineImages(body: InferRequestBody, model: Servable): Promise<void> {
  const steps = model.pipeline?.steps ?? [];
  for (const step of steps) {
    if (step.kind !== 'processor' || step.processor !== 'image.decode') continue;
    const source = step.inputs.image;
    if (source === undefined || source.step !== undefined) continue;
    const tensor = body.inputs[source.name];
    if (tensor?.dtype !== 'uint8') continue;
    const maxPixels =
      typeof step.options.maxPixels === 'number' ? step.options.maxPixels : DEFAULT_MAX_PIXELS;
    try {
      await inspectImage(tensor.data as Uint8Array, { maxPixels });
    } catch (error) {
      throw error instanceof ImageError ? imageProblem(source.name, error) : error;
    }
  }
}

function imageProblem(input: string, error: ImageError): InferqError {
  const message = `input '${input}': ${error.message}`;
  switch (error.reason) {
    case 'unsupported-format':
      return new UnsupportedMediaTypeError(message, { cause: error });
    case 'too-many-pixels':
      return new PayloadTooLargeError(message, { cause: error });
    default:
      return new InvalidImageError(message, { cause: error });
  }
}
