import { UnprocessableError, UnrepresentableInputError } from './errors.ts';
import type { InferRequestBody, ModelSignature, Tensor } from './types.ts';

/** -1 in a signature shape: any size is accepted on that axis (any negative is read the same). */
export const DYNAMIC_DIMENSION = -1;

/**
 * Checks a structurally valid request against the model's signature: every input present and
 * known, dtype, rank and fixed dimensions equal, requested outputs known. Throws
 * UnprocessableError (422) naming the first offending input or output.
 */
export function validateInputs(body: InferRequestBody, signature: ModelSignature): void {
  const expected = new Map(signature.inputs.map((spec) => [spec.name, spec]));
  const inputList = signature.inputs.map((spec) => `'${spec.name}'`).join(', ');

  for (const name of Object.keys(body.inputs)) {
    if (!expected.has(name)) {
      throw new UnprocessableError(`unknown input '${name}'; the model takes ${inputList}`);
    }
  }
  for (const spec of signature.inputs) {
    const tensor = body.inputs[spec.name];
    if (tensor === undefined) {
      throw new UnprocessableError(`missing input '${spec.name}'; the model takes ${inputList}`);
    }
    if (tensor.dtype !== spec.dtype) {
      throw new UnprocessableError(
        `input '${spec.name}' is ${tensor.dtype}; the model expects ${spec.dtype}`,
      );
    }
    const expectedShape = `[${spec.shape.join(', ')}]`;
    if (tensor.shape.length !== spec.shape.length) {
      throw new UnprocessableError(
        `input '${spec.name}' has rank ${tensor.shape.length} (shape [${tensor.shape.join(', ')}]); ` +
          `the model expects rank ${spec.shape.length} ${expectedShape}`,
      );
    }
    spec.shape.forEach((dim, axis) => {
      const actual = tensor.shape[axis];
      if (dim >= 0 && actual !== dim) {
        throw new UnprocessableError(
          `input '${spec.name}' has ${actual} on axis ${axis} (shape [${tensor.shape.join(', ')}]); ` +
            `the model expects ${dim} ${expectedShape}, -1 meaning any`,
        );
      }
    });
    checkRepresentable(spec.name, tensor);
  }

  if (body.outputs !== undefined) {
    const known = new Set(signature.outputs.map((spec) => spec.name));
    for (const name of body.outputs) {
      if (!known.has(name)) {
        const outputList = signature.outputs.map((spec) => `'${spec.name}'`).join(', ');
        throw new UnprocessableError(`unknown output '${name}'; the model produces ${outputList}`);
      }
    }
  }
}

// A lone surrogate: a high one not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Refuses string elements onnxruntime-node would change on the way in (it passes them as C strings
 * in UTF-8): a NUL ends the string there (`"abc\u0000def"` reached the model as `"abc"`), a lone
 * surrogate (possible in JSON's `\ud800` escapes) becomes U+FFFD. Every numeric value is carried
 * bit for bit, so only strings are checked.
 */
function checkRepresentable(name: string, tensor: Tensor): void {
  if (tensor.dtype !== 'string') return;
  const strings = tensor.data as string[];
  for (let i = 0; i < strings.length; i++) {
    const text = strings[i] as string;
    if (text.includes('\u0000')) {
      throw new UnrepresentableInputError(
        `input '${name}' element ${i} holds a NUL character (U+0000); the model runtime would cut the string there`,
      );
    }
    if (LONE_SURROGATE.test(text)) {
      throw new UnrepresentableInputError(
        `input '${name}' element ${i} holds a lone UTF-16 surrogate; it has no UTF-8 form, so the model runtime would replace it`,
      );
    }
  }
}
