/**
 * fast-check generators of hostile and near-valid infer bodies, shared by the in-process property
 * tests (hostile-input.test.ts) and the HTTP-level ones (test/integration/hostile-input.test.ts).
 * Test support only: nothing in the services imports it.
 */
import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { BYTES_PER_ELEMENT, elementCount } from './tensor.ts';
import type { DType, ModelSignature, NumericDType, WireFormat } from './types.ts';
import { DTYPES } from './types.ts';

/** The signatures near-valid bodies are made to fit; the first one is test/helpers' affine model. */
export const SIGNATURES: ModelSignature[] = [
  {
    inputs: [{ name: 'x', dtype: 'float32', shape: [-1, 4] }],
    outputs: [{ name: 'y', dtype: 'float32', shape: [-1, 4] }],
  },
  {
    inputs: [
      { name: 'ids', dtype: 'int64', shape: [-1, -1] },
      { name: 'mask', dtype: 'bool', shape: [-1, -1] },
    ],
    outputs: [{ name: 'y', dtype: 'float32', shape: [-1] }],
  },
  {
    inputs: [{ name: 's', dtype: 'string', shape: [-1] }],
    outputs: [{ name: 'n', dtype: 'int32', shape: [-1] }],
  },
];

export const NAMES = ['x', 'ids', 'mask', 's', 'y', 'n', '__proto__', 'constructor', ''];

/** Any value MessagePack can carry: maps with string keys, arrays, bin, strings, numbers, bigints. */
export const wireValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(null, true, false),
    fc.integer(),
    fc.double(),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
    fc.string({ maxLength: 20 }),
    fc.constantFrom(...NAMES, ...DTYPES, 'inputs', 'dtype', 'shape', 'data', 'b64'),
    fc.uint8Array({ maxLength: 40 }),
    fc.array(tie('value'), { maxLength: 6 }),
    fc.dictionary(
      fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom(...NAMES, 'inputs', 'dtype', 'shape', 'data')),
      tie('value'),
      {
        maxKeys: 5,
      },
    ),
  ),
})).value;

const dim = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 5 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      -1,
      1.5,
      33,
      2 ** 31,
      2 ** 53,
      2 ** 64,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      '3',
      null,
    ),
  },
);

/** An element value for a list: mostly right for some dtype, sometimes out of range or of the wrong kind. */
const element = fc.oneof(
  fc.integer({ min: -300, max: 300 }),
  fc.double(),
  fc.constantFrom(
    true,
    false,
    0,
    1,
    'NaN',
    'Infinity',
    '-Infinity',
    '18446744073709551615',
    '-9223372036854775809',
    '',
  ),
  fc.string({ maxLength: 16 }),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
);

/** A list element the dtype accepts. */
function validElement(dtype: NumericDType): fc.Arbitrary<unknown> {
  switch (dtype) {
    case 'float16':
    case 'float32':
    case 'float64':
      return fc.oneof(fc.double(), fc.constantFrom('NaN', 'Infinity', '-Infinity'));
    case 'bool':
      return fc.constantFrom(true, false, 0, 1);
    case 'int64':
      return fc.oneof(fc.integer(), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String));
    case 'uint64':
      return fc.oneof(fc.nat(), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String));
    default: {
      const bits = BYTES_PER_ELEMENT[dtype] * 8;
      return dtype.startsWith('u')
        ? fc.integer({ min: 0, max: 2 ** bits - 1 })
        : fc.integer({ min: -(2 ** (bits - 1)), max: 2 ** (bits - 1) - 1 });
    }
  }
}

interface WireTensor {
  dtype: unknown;
  shape: unknown;
  data: unknown;
}

/** A well-formed tensor of `dtype` and `shape` in `format`'s wire form. */
function exactTensor(format: WireFormat, dtype: DType, shape: number[]): fc.Arbitrary<WireTensor> {
  const count = elementCount(shape) ?? 0;
  let data: fc.Arbitrary<unknown>;
  if (dtype === 'string') {
    data = fc.array(fc.string({ maxLength: 6, unit: 'grapheme' }), { minLength: count, maxLength: count });
  } else if (format === 'msgpack' || dtype === 'float16') {
    const bytes = count * BYTES_PER_ELEMENT[dtype as NumericDType];
    const raw = fc.uint8Array({ minLength: bytes, maxLength: bytes });
    data = dtype === 'bool' ? raw.map((b) => b.map((x) => x & 1)) : raw;
    if (format === 'json') data = data.map((b) => ({ b64: Buffer.from(b as Uint8Array).toString('base64') }));
  } else {
    data = fc.array(validElement(dtype), { minLength: count, maxLength: count });
  }
  return data.map((d) => ({ dtype, shape, data: d }) as WireTensor);
}

/** Inputs that fit one of `signatures` (dynamic dimensions from 0 to 4). */
export function fittingInputs(
  format: WireFormat,
  signatures: readonly ModelSignature[],
): fc.Arbitrary<Record<string, WireTensor>> {
  return fc
    .constantFrom(...signatures)
    .chain((signature) =>
      fc
        .tuple(
          ...signature.inputs.map((spec) =>
            fc
              .tuple(...spec.shape.map((d) => (d >= 0 ? fc.constant(d) : fc.integer({ min: 0, max: 4 }))))
              .chain((shape) => exactTensor(format, spec.dtype, shape)),
          ),
        )
        .map((tensors) => Object.fromEntries(signature.inputs.map((spec, i) => [spec.name, tensors[i]!]))),
    );
}

/** A tensor that is often exactly right, often off in one field, for either wire format. */
function tensorFor(format: WireFormat): fc.Arbitrary<WireTensor> {
  const exact = fc
    .record({
      dtype: fc.constantFrom(...DTYPES),
      shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }),
    })
    .chain(({ dtype, shape }) => exactTensor(format, dtype, shape));
  const broken = fc.record({
    dtype: fc.oneof(fc.constantFrom<unknown>(...DTYPES), wireValue),
    shape: fc.oneof(fc.array(dim, { maxLength: 6 }), wireValue),
    data: fc.oneof(
      fc.array(element, { maxLength: 90 }),
      fc.uint8Array({ maxLength: 70 }),
      fc.record({ b64: fc.oneof(fc.base64String({ maxLength: 40 }), fc.string({ maxLength: 10 })) }),
      wireValue,
    ),
  });
  return fc.oneof({ weight: 3, arbitrary: exact }, { weight: 2, arbitrary: broken });
}

/** Infer bodies, many of them fitting one of `signatures`, the rest off in some way. */
export function requestFor(
  format: WireFormat,
  signatures: readonly ModelSignature[] = SIGNATURES,
): fc.Arbitrary<Record<string, unknown>> {
  return fc
    .record(
      {
        inputs: fc.oneof(
          { weight: 4, arbitrary: fittingInputs(format, signatures) },
          {
            weight: 4,
            arbitrary: fc.dictionary(fc.constantFrom(...NAMES), tensorFor(format), { maxKeys: 4 }),
          },
          { weight: 1, arbitrary: wireValue },
        ),
        outputs: mostly(fc.array(fc.constantFrom('y', 'y', 'n', 'z'), { minLength: 1, maxLength: 2 })),
        priority: mostly(fc.integer()),
        timeoutMs: mostly(fc.integer({ min: 1 })),
        cache: mostly(fc.boolean()),
        callback: mostly(
          fc.record(
            {
              channel: fc.string({ minLength: 1, maxLength: 10 }),
              url: fc.oneof({ weight: 4, arbitrary: fc.webUrl() }, fc.string()),
            },
            { requiredKeys: [] },
          ),
        ),
        metadata: mostly(
          fc.dictionary(
            fc.string({ minLength: 1, maxLength: 10 }),
            fc.oneof(fc.string(), fc.double(), fc.boolean()),
            {
              maxKeys: 3,
            },
          ),
        ),
        extra: wireValue,
      },
      { requiredKeys: ['inputs'] },
    )
    .chain((request) =>
      // Unknown fields are refused: leave them in one request out of eight.
      fc.integer({ min: 0, max: 7 }).map((roll) => {
        if (roll !== 0) delete request.extra;
        return request;
      }),
    );
}

/** `valid` nine times out of ten, any value otherwise. */
function mostly(valid: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 9, arbitrary: valid }, { weight: 1, arbitrary: wireValue });
}

/** JSON cannot carry bin or bigints: the JSON body of a generated value. */
export function toJson(value: unknown): Uint8Array {
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'bigint') return v.toString();
    if (v instanceof Uint8Array) return Array.from(v);
    return v;
  });
  return new TextEncoder().encode(text ?? 'null');
}

export type Mutation = { kind: 'truncate' | 'flip' | 'insert' | 'delete'; at: number; byte: number };

export function mutate(bytes: Uint8Array, mutations: Mutation[]): Uint8Array {
  let result = Uint8Array.from(bytes);
  for (const { kind, at, byte } of mutations) {
    const i = result.length === 0 ? 0 : at % result.length;
    if (kind === 'truncate') result = result.subarray(0, i);
    else if (kind === 'flip') result[i] = byte;
    else if (kind === 'insert')
      result = Uint8Array.from([...result.subarray(0, i), byte, ...result.subarray(i)]);
    else result = Uint8Array.from([...result.subarray(0, i), ...result.subarray(i + 1)]);
  }
  return result;
}

export const mutation = fc.record({
  kind: fc.constantFrom<Mutation['kind']>('truncate', 'flip', 'insert', 'delete'),
  at: fc.nat(),
  byte: fc.integer({ min: 0, max: 255 }),
});
