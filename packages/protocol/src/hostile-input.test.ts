/**
 * Property-based tests of everything the API does with a body before it reaches Redis: decode
 * (MessagePack or JSON), validate against a signature, hash the cache key, encode the payload.
 * Whatever the bytes, each step either succeeds or throws one of our typed 4xx errors, which
 * `toProblem` turns into a 4xx problem; nothing else escapes (that would be a 500, or a crash).
 * 10,500 cases in all; the HTTP-level counterpart is test/integration/hostile-input.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { cacheKey } from './cache-key.ts';
import { decodeInferRequest, decodePayload, encodePayload, structureLimitsFor } from './codec.ts';
import { InferqError, toProblem } from './errors.ts';
import { mutate, mutation, requestFor, SIGNATURES, toJson, wireValue } from './hostile-arbitraries.ts';
import { findJsonStructureProblem } from './json-structure.ts';
import { MAX_NESTING, packStandard } from './msgpack.ts';
import { elementCount } from './tensor.ts';
import type { DType, InferRequestBody, InputLimits, WireFormat } from './types.ts';
import { DEFAULT_INPUT_LIMITS } from './types.ts';
import { validateInputs } from './validate.ts';

/** Small caps, so that generated bodies reach every one of them. */
const LIMITS: InputLimits = {
  maxElementsPerTensor: 64,
  maxRank: 4,
  maxDimension: 32,
  maxStringBytes: 12,
  maxInputs: 3,
  maxListElements: 80,
};

type Outcome = { accepted: InferRequestBody } | { status: number };

/**
 * The API's submit path without Redis: decode, validate, cache key, payload. Returns the accepted
 * body or the problem status; throws (failing the property) on anything that is not a typed 4xx.
 */
function submitPath(body: Uint8Array, format: WireFormat, limits: InputLimits = LIMITS): Outcome {
  let accepted: InferRequestBody;
  try {
    accepted = decodeInferRequest(body, format, limits);
    const signature =
      SIGNATURES.find((s) => s.inputs.some((i) => i.name in accepted.inputs)) ?? SIGNATURES[0]!;
    validateInputs(accepted, signature);
  } catch (error: unknown) {
    if (!(error instanceof InferqError)) throw error;
    const problem = toProblem(error);
    if (problem.status < 400 || problem.status > 499) throw error;
    expect(problem.type).toBe(`https://inferq.dev/problems/${error.code}`);
    expect(typeof problem.detail).toBe('string');
    return { status: problem.status };
  }
  // Whatever was accepted is within the caps and goes through the rest of the path.
  const names = Object.keys(accepted.inputs);
  expect(names.length).toBeLessThanOrEqual(limits.maxInputs);
  for (const tensor of Object.values(accepted.inputs)) {
    expect(tensor.shape.length).toBeLessThanOrEqual(limits.maxRank);
    for (const dim of tensor.shape) expect(dim).toBeLessThanOrEqual(limits.maxDimension);
    expect(elementCount(tensor.shape)).toBeLessThanOrEqual(limits.maxElementsPerTensor);
    expect(tensor.data.length).toBe(elementCount(tensor.shape));
  }
  expect(
    cacheKey({ tenant: 't', model: 'm', version: 1, outputs: accepted.outputs, inputs: accepted.inputs }),
  ).toMatch(/^[0-9a-f]{64}$/);
  const payload = decodePayload(encodePayload({ inputs: accepted.inputs, outputs: accepted.outputs }));
  expect(Object.keys(payload.inputs).sort()).toEqual(names.sort());
  return { accepted };
}

// ---------------------------------------------------------------------------------------------

describe('arbitrary bytes never crash the decoder', () => {
  test('as MessagePack (2,500 cases)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        submitPath(bytes, 'msgpack');
      }),
      { numRuns: 2500 },
    );
  });

  test('as JSON (1,000 cases)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.string({ maxLength: 200 }).map((s) => new TextEncoder().encode(s)),
        ),
        (bytes) => {
          submitPath(bytes, 'json');
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('arbitrary structures never crash the decoder', () => {
  test('any MessagePack value (1,500 cases)', () => {
    fc.assert(
      fc.property(
        fc.oneof(wireValue, fc.dictionary(fc.constantFrom('inputs', 'outputs', 'metadata', 'x'), wireValue)),
        (value) => {
          submitPath(packStandard(value), 'msgpack');
        },
      ),
      { numRuns: 1500 },
    );
  });

  test('any JSON value (1,500 cases)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue(),
          fc.dictionary(fc.constantFrom('inputs', 'outputs', 'metadata'), fc.jsonValue()),
        ),
        (value) => {
          submitPath(toJson(value), 'json');
        },
      ),
      { numRuns: 1500 },
    );
  });
});

describe('near-valid requests end accepted or as a 400/422, never anything else', () => {
  test.each([
    ['msgpack', 1500],
    ['json', 1500],
  ] as const)('%s (%i cases)', (format, numRuns) => {
    const statuses = new Map<number | 'accepted', number>();
    fc.assert(
      fc.property(requestFor(format), (request) => {
        const outcome = submitPath(format === 'json' ? toJson(request) : packStandard(request), format);
        const key = 'accepted' in outcome ? 'accepted' : outcome.status;
        expect([400, 422, 'accepted']).toContain(key);
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
      }),
      { numRuns },
    );
    // The generator reaches every outcome, so the property is not vacuous.
    expect(statuses.get('accepted')).toBeGreaterThan(0);
    expect(statuses.get(400)).toBeGreaterThan(0);
    expect(statuses.get(422)).toBeGreaterThan(0);
  });

  test('mutated valid MessagePack bodies (1,000 cases)', () => {
    fc.assert(
      fc.property(
        requestFor('msgpack').map((request) => Uint8Array.from(packStandard(request))),
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        (bytes, mutations) => {
          submitPath(mutate(bytes, mutations), 'msgpack');
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('structure caps, checked before anything is built', () => {
  const deep = (open: number, close: number, depth: number) =>
    Uint8Array.from([...Array(depth).fill(open), ...Array(depth).fill(close)]);

  test.each([
    ['MessagePack', 'msgpack', Uint8Array.from([...Array(100_000).fill(0x91), 0xc0])],
    ['JSON', 'json', deep(0x5b, 0x5d, 100_000)],
  ] as const)('100,000 nested arrays in %s: 400, no stack overflow', (_name, format, body) => {
    expect(submitPath(body, format, DEFAULT_INPUT_LIMITS)).toEqual({ status: 400 });
    expect(() => decodeInferRequest(body, format)).toThrow(
      new RegExp(`nested deeper than ${MAX_NESTING} levels`),
    );
  });

  test('a body of empty maps is refused before it becomes objects', () => {
    const count = 100_000;
    const msgpack = Uint8Array.from([0xdd, 0, 1, 0x86, 0xa0, ...Array(count).fill(0x80)]);
    expect(() => decodeInferRequest(msgpack, 'msgpack')).toThrow(/more than 274 maps and arrays/);
    const json = new TextEncoder().encode(`{"inputs":[${Array(count).fill('{}').join(',')}]}`);
    expect(() => decodeInferRequest(json, 'json')).toThrow(/more than 274 objects and arrays/);
  });

  test('a list longer than the list allowance is refused before it is parsed', () => {
    const limits = { ...DEFAULT_INPUT_LIMITS, maxListElements: 1000 };
    const { maxValues } = structureLimitsFor(limits);
    const json = new TextEncoder().encode(
      JSON.stringify({
        inputs: { x: { dtype: 'uint8', shape: [maxValues], data: Array(maxValues).fill(0) } },
      }),
    );
    expect(() => decodeInferRequest(json, 'json', limits)).toThrow(
      `JSON holds more than ${maxValues} values`,
    );
    const msgpack = packStandard({
      inputs: { x: { dtype: 'uint8', shape: [maxValues], data: Array(maxValues).fill(0) } },
    });
    expect(() => decodeInferRequest(msgpack, 'msgpack', limits)).toThrow(
      `MessagePack holds more than ${maxValues} values`,
    );
  });

  test('list elements are counted across tensors; bin and b64 data do not count', () => {
    const limits = { ...DEFAULT_INPUT_LIMITS, maxListElements: 10 };
    const list = (n: number) => ({ dtype: 'uint8', shape: [n], data: Array(n).fill(1) });
    const ok = decodeInferRequest(toJson({ inputs: { a: list(6), b: list(4) } }), 'json', limits);
    expect(Object.keys(ok.inputs)).toEqual(['a', 'b']);
    expect(() => decodeInferRequest(toJson({ inputs: { a: list(6), b: list(5) } }), 'json', limits)).toThrow(
      'inputs: 11 elements sent as lists, more than the 10 allowed; send large tensors as MessagePack bin or JSON { "b64": ... }',
    );
    const strings = { dtype: 'string', shape: [11], data: Array(11).fill('a') };
    expect(() => decodeInferRequest(packStandard({ inputs: { s: strings } }), 'msgpack', limits)).toThrow(
      /11 elements sent as lists/,
    );
    const bin = { dtype: 'uint8', shape: [1000], data: new Uint8Array(1000) };
    const b64 = { dtype: 'uint8', shape: [1000], data: { b64: Buffer.alloc(1000).toString('base64') } };
    expect(
      decodeInferRequest(packStandard({ inputs: { a: bin, b: list(10) } }), 'msgpack', limits).inputs.a?.data,
    ).toHaveLength(1000);
    expect(
      decodeInferRequest(toJson({ inputs: { a: b64, b: list(10) } }), 'json', limits).inputs.a?.data,
    ).toHaveLength(1000);
  });

  test('the JSON scan reads strings as strings: brackets, commas and escaped quotes inside do not count', () => {
    const limits = { maxValues: 4, maxContainers: 1 };
    expect(
      findJsonStructureProblem(new TextEncoder().encode('["[[[,,,{{{", "a\\"],[,", "\\\\"]'), limits),
    ).toBeUndefined();
    expect(findJsonStructureProblem(new TextEncoder().encode('["a\\\\",[]]'), limits)).toBe(
      'JSON holds more than 1 objects and arrays',
    );
    expect(findJsonStructureProblem(new TextEncoder().encode('[1,2,3,4]'), limits)).toBe(
      'JSON holds more than 4 values',
    );
  });

  test('the default caps leave room for every valid body within them', () => {
    const { maxValues, maxContainers } = structureLimitsFor(DEFAULT_INPUT_LIMITS);
    expect(maxContainers).toBe(4 * DEFAULT_INPUT_LIMITS.maxInputs + 18);
    // A bulk body gets the room of each request, but one allowance of listed elements for all.
    const listed = DEFAULT_INPUT_LIMITS.maxListElements;
    const bulk = structureLimitsFor(DEFAULT_INPUT_LIMITS, 64);
    expect(bulk.maxContainers).toBe(64 * (4 * DEFAULT_INPUT_LIMITS.maxInputs + 16) + 2);
    expect(bulk.maxValues - listed).toBe(64 * (maxValues - listed));
    expect(maxValues).toBeGreaterThan(DEFAULT_INPUT_LIMITS.maxListElements + 1024 + 64);
  });
});

describe('NaN and infinities', () => {
  const json = (dtype: DType, data: unknown[]) =>
    toJson({ inputs: { x: { dtype, shape: [data.length], data } } });

  test('float tensors take them as "NaN", "Infinity", "-Infinity" in JSON and as any bit pattern in bin', () => {
    const decoded = decodeInferRequest(json('float32', ['NaN', 'Infinity', '-Infinity', 1]), 'json');
    expect(Array.from(decoded.inputs.x?.data as Float32Array)).toEqual([Number.NaN, Infinity, -Infinity, 1]);
    const bits = new Float64Array([Number.NaN, Infinity, -Infinity]);
    const packed = packStandard({
      inputs: { x: { dtype: 'float64', shape: [3], data: new Uint8Array(bits.buffer) } },
    });
    expect(Array.from(decodeInferRequest(packed, 'msgpack').inputs.x?.data as Float64Array)).toEqual([
      Number.NaN,
      Infinity,
      -Infinity,
    ]);
  });

  test.each(['int8', 'int32', 'int64', 'uint8', 'uint64', 'bool'] as const)(
    '%s tensors refuse them with 400',
    (dtype) => {
      for (const value of ['NaN', 'Infinity', '-Infinity']) {
        expect(submitPath(json(dtype, [value]), 'json', DEFAULT_INPUT_LIMITS)).toEqual({ status: 400 });
      }
    },
  );

  test('bare NaN is not JSON', () => {
    expect(() =>
      decodeInferRequest(
        new TextEncoder().encode('{"inputs":{"x":{"dtype":"float32","shape":[1],"data":[NaN]}}}'),
        'json',
      ),
    ).toThrow(/not valid JSON/);
  });
});
