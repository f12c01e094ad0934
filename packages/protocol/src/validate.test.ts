import { describe, expect, test } from 'vitest';
import { UnprocessableError, UnrepresentableInputError } from './errors.ts';
import type { InferRequestBody, ModelSignature, Tensor } from './types.ts';
import { validateInputs } from './validate.ts';

const signature: ModelSignature = {
  inputs: [
    { name: 'x', dtype: 'float32', shape: [-1, 3, 48, -1] },
    { name: 'mask', dtype: 'bool', shape: [-1] },
  ],
  outputs: [
    { name: 'y', dtype: 'float32', shape: [-1, 2] },
    { name: 'z', dtype: 'int64', shape: [-1] },
  ],
};

function tensor(dtype: Tensor['dtype'], shape: number[]): Tensor {
  const count = shape.reduce((a, b) => a * b, 1);
  return { dtype, shape, data: dtype === 'bool' ? new Uint8Array(count) : new Float32Array(count) };
}

const valid: InferRequestBody = {
  inputs: { x: tensor('float32', [2, 3, 48, 7]), mask: tensor('bool', [2]) },
  outputs: ['z'],
};

test('a matching request passes, dynamic dimensions taking any size', () => {
  expect(() => validateInputs(valid, signature)).not.toThrow();
  expect(() =>
    validateInputs({ inputs: { x: tensor('float32', [1, 3, 48, 0]), mask: tensor('bool', [0]) } }, signature),
  ).not.toThrow();
});

test('no inputs: valid for a model that takes none, 422 naming the first missing one otherwise', () => {
  expect(() =>
    validateInputs({ inputs: {} }, { inputs: [], outputs: [{ name: 'y', dtype: 'float32', shape: [2] }] }),
  ).not.toThrow();
  expect(() => validateInputs({ inputs: {} }, signature)).toThrow(
    new UnprocessableError("missing input 'x'; the model takes 'x', 'mask'"),
  );
});

describe('mismatches are 422 and name the input', () => {
  const cases: [string, InferRequestBody, RegExp][] = [
    [
      'missing input',
      { inputs: { x: valid.inputs.x! } },
      /^missing input 'mask'; the model takes 'x', 'mask'$/,
    ],
    [
      'unknown input',
      { inputs: { ...valid.inputs, extra: tensor('bool', [1]) } },
      /^unknown input 'extra'; the model takes 'x', 'mask'$/,
    ],
    [
      'dtype mismatch',
      { inputs: { ...valid.inputs, mask: tensor('float32', [2]) } },
      /^input 'mask' is float32; the model expects bool$/,
    ],
    [
      'rank mismatch',
      { inputs: { ...valid.inputs, x: tensor('float32', [3, 48, 7]) } },
      /^input 'x' has rank 3 \(shape \[3, 48, 7\]\); the model expects rank 4 \[-1, 3, 48, -1\]$/,
    ],
    [
      'fixed dimension mismatch',
      { inputs: { ...valid.inputs, x: tensor('float32', [2, 3, 32, 7]) } },
      /^input 'x' has 32 on axis 2 \(shape \[2, 3, 32, 7\]\); the model expects 48 \[-1, 3, 48, -1\]/,
    ],
    [
      'unknown output',
      { ...valid, outputs: ['y', 'w'] },
      /^unknown output 'w'; the model produces 'y', 'z'$/,
    ],
  ];

  test.each(cases)('%s', (_name, body, detail) => {
    let thrown: unknown;
    try {
      validateInputs(body, signature);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(UnprocessableError);
    expect((thrown as UnprocessableError).status).toBe(422);
    expect((thrown as UnprocessableError).message).toMatch(detail);
  });
});

describe('values the runtime cannot carry', () => {
  const strings: ModelSignature = {
    inputs: [{ name: 's', dtype: 'string', shape: [-1] }],
    outputs: [{ name: 'y', dtype: 'string', shape: [-1] }],
  };
  const body = (data: string[]): InferRequestBody => ({
    inputs: { s: { dtype: 'string', shape: [data.length], data } },
  });

  test.each([
    ['a NUL', ['ok', 'abc\u0000def'], /element 1 holds a NUL character/],
    ['a lone high surrogate', ['\ud800'], /element 0 holds a lone UTF-16 surrogate/],
    ['a lone high surrogate before a letter', ['a\ud83dz'], /lone UTF-16 surrogate/],
    ['a lone low surrogate', ['x\udc00'], /lone UTF-16 surrogate/],
    ['surrogates in the wrong order', ['\ude00\ud83d'], /lone UTF-16 surrogate/],
  ])('refuses %s with a 422 naming the element', (_name, data, detail) => {
    let thrown: unknown;
    try {
      validateInputs(body(data), strings);
    } catch (error: unknown) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(UnrepresentableInputError);
    expect((thrown as UnrepresentableInputError).status).toBe(422);
    expect((thrown as Error).message).toMatch(detail);
  });

  test('takes what UTF-8 carries: pairs, any other control character, the empty string', () => {
    expect(() => validateInputs(body(['😀', 'é\u0001\u007f\n', '', '\ud83d\ude00x']), strings)).not.toThrow();
  });
});
