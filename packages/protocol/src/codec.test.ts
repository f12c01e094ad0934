import { Buffer } from 'node:buffer';
import { Packr } from 'msgpackr';
import { describe, expect, test } from 'vitest';
import {
  decodeCompletionMessage,
  decodeInferRequest,
  decodePayload,
  decodeRecord,
  decodeTensorMap,
  encodeCompletionMessage,
  encodePayload,
  encodeRecord,
  encodeTensorMap,
  withCompletionMessageId,
} from './codec.ts';
import { BadRequestError } from './errors.ts';
import { findMessagePackProblem, packStandard, unpackStandard } from './msgpack.ts';
import { newRequestId } from './request-id.ts';
import { tensorDataBytes, tensorDataToList } from './tensor.ts';
import { mapValues, sampleTensors, tensorToMsgpackWire, utf8 } from './test-support.ts';
import type { CompletionMessage, InputLimits, RequestRecord, TensorData } from './types.ts';
import { DEFAULT_INPUT_LIMITS } from './types.ts';

const timings = { queueMs: 1, batchWaitMs: 0.5, inferMs: 2.25, totalMs: 4 };

function msgpackRequest(body: Record<string, unknown>): Uint8Array {
  return packStandard(body);
}

function jsonRequest(body: unknown): Uint8Array {
  return utf8(JSON.stringify(body));
}

const oneInput = { x: { dtype: 'float32', shape: [2], data: [1, 2] } };

describe('decodeInferRequest round trips every dtype', () => {
  const tensors = sampleTensors();

  test('MessagePack with bin data', () => {
    const body = msgpackRequest({ inputs: mapValues(tensors, tensorToMsgpackWire) });
    expect(decodeInferRequest(body, 'msgpack')).toEqual({ inputs: tensors });
  });

  test('JSON with element lists (int64 as strings, NaN/Infinity as strings, bool as true/false)', () => {
    const inputs = mapValues(tensors, (t) => ({ dtype: t.dtype, shape: t.shape, data: tensorDataToList(t) }));
    expect(decodeInferRequest(jsonRequest({ inputs }), 'json')).toEqual({ inputs: tensors });
  });

  test('JSON with base64 data', () => {
    const inputs = mapValues(tensors, (t) => ({
      dtype: t.dtype,
      shape: t.shape,
      data:
        t.dtype === 'string'
          ? t.data
          : { b64: Buffer.from(tensorDataBytes(t.data as Exclude<TensorData, string[]>)).toString('base64') },
    }));
    expect(decodeInferRequest(jsonRequest({ inputs }), 'json')).toEqual({ inputs: tensors });
  });

  test('JSON accepts bool as 0/1, int64 as safe numbers, and decodes float16 from numbers', () => {
    const request = decodeInferRequest(
      jsonRequest({
        inputs: {
          b: { dtype: 'bool', shape: [3], data: [1, 0, true] },
          i: { dtype: 'int64', shape: [2], data: [-5, '18446744073709551615'.slice(1)] },
          h: { dtype: 'float16', shape: [3], data: [0.1, -1e-9, 1e-7] },
        },
      }),
      'json',
    );
    expect(request.inputs.b?.data).toEqual(new Uint8Array([1, 0, 1]));
    expect(request.inputs.i?.data).toEqual(new BigInt64Array([-5n, 8446744073709551615n]));
    // 0.1 -> 0x2e66, -1e-9 -> -0 (0x8000), 1e-7 -> subnormal 2 (1e-7 / 2^-24 = 1.68)
    expect(request.inputs.h?.data).toEqual(new Uint16Array([0x2e66, 0x8000, 2]));
  });

  test('MessagePack also accepts element lists, with int64 beyond 2^53 as integers', () => {
    const body = msgpackRequest({
      inputs: {
        i: { dtype: 'int64', shape: [2], data: [2n ** 62n, -1] },
        u: { dtype: 'uint64', shape: [1], data: [2n ** 64n - 1n] },
        f: { dtype: 'float32', shape: [2], data: [0.5, 2] },
      },
    });
    const request = decodeInferRequest(body, 'msgpack');
    expect(request.inputs.i?.data).toEqual(new BigInt64Array([2n ** 62n, -1n]));
    expect(request.inputs.u?.data).toEqual(new BigUint64Array([2n ** 64n - 1n]));
    expect(request.inputs.f?.data).toEqual(new Float32Array([0.5, 2]));
  });

  test('keeps the optional fields', () => {
    const fields = {
      outputs: ['y', 'z'],
      priority: -3,
      timeoutMs: 5000,
      cache: false,
      callback: { channel: 'results', url: 'https://example.com/hook' },
      metadata: { user: 'u1', attempt: 2, debug: true },
    };
    for (const [format, body] of [
      ['json', jsonRequest({ inputs: oneInput, ...fields })],
      ['msgpack', msgpackRequest({ inputs: { x: tensorToMsgpackWire(sampleTensors().f32!) }, ...fields })],
    ] as const) {
      const { inputs, ...rest } = decodeInferRequest(body, format);
      expect(Object.keys(inputs)).toEqual(['x']);
      expect(rest).toEqual(fields);
    }
  });
});

test('an empty inputs map decodes, for a model that takes no inputs (ONNX Constant); validateInputs judges it', () => {
  for (const [format, body] of [
    ['json', jsonRequest({ inputs: {} })],
    ['msgpack', msgpackRequest({ inputs: {} })],
  ] as const) {
    expect(decodeInferRequest(body, format)).toEqual({ inputs: {} });
  }
  expect(decodePayload(encodePayload({ inputs: {} }))).toEqual({ inputs: {} });
});

describe('tensor data are views over the body', () => {
  /** The body placed `shift` bytes into a fresh buffer, and where in the body its tensor data start. */
  function bodyAt(shift: number): { body: Uint8Array; dataOffset: number } {
    const encoded = msgpackRequest({
      inputs: { x: { dtype: 'float64', shape: [3], data: tensorDataBytes(new Float64Array([1.5, -2, 3])) } },
    });
    const body = new Uint8Array(new ArrayBuffer(encoded.byteLength + 16), shift, encoded.byteLength);
    body.set(encoded);
    // `data` is the last field: its 24 bytes end the body.
    return { body, dataOffset: encoded.byteLength - 24 };
  }

  test('aligned: the typed array shares the body buffer', () => {
    const { dataOffset } = bodyAt(0);
    const alignedShift = (8 - (dataOffset % 8)) % 8;
    const { body } = bodyAt(alignedShift);
    const data = decodeInferRequest(body, 'msgpack').inputs.x?.data as Float64Array;
    expect(data.byteOffset % 8).toBe(0);
    expect(data.buffer).toBe(body.buffer);
    expect(Array.from(data)).toEqual([1.5, -2, 3]);
    // A write to the body shows through the tensor: a view, not a copy.
    body.fill(0xff, data.byteOffset - body.byteOffset, data.byteOffset - body.byteOffset + 8);
    expect(data[0]).toBeNaN();
  });

  test('misaligned: the data are copied, with the same values', () => {
    const { dataOffset } = bodyAt(0);
    const misalignedShift = (8 - (dataOffset % 8) + 3) % 8;
    const { body } = bodyAt(misalignedShift);
    const data = decodeInferRequest(body, 'msgpack').inputs.x?.data as Float64Array;
    expect(data.buffer).not.toBe(body.buffer);
    expect(Array.from(data)).toEqual([1.5, -2, 3]);
  });

  test('uint8 and bool stay plain Uint8Array views, not Buffers', () => {
    const body = msgpackRequest({
      inputs: { b: { dtype: 'bool', shape: [2], data: new Uint8Array([1, 0]) } },
    });
    const data = decodeInferRequest(body, 'msgpack').inputs.b?.data;
    expect(data?.constructor).toBe(Uint8Array);
    expect((data as Uint8Array).buffer).toBe(body.buffer);
  });
});

describe('decodeInferRequest refuses malformed bodies with 400 and a precise detail', () => {
  const limits: InputLimits = { ...DEFAULT_INPUT_LIMITS, maxRank: 3, maxDimension: 1000, maxStringBytes: 5 };
  const valid = msgpackRequest({ inputs: { x: tensorToMsgpackWire(sampleTensors().f32!) } });
  const ext = new Packr({ moreTypes: true, useRecords: false }).pack({
    inputs: { x: { dtype: 'float32', shape: [1], data: new Float32Array([1]) } },
  });
  const withInput = (x: unknown, rest: Record<string, unknown> = {}) =>
    jsonRequest({ inputs: { x }, ...rest });

  const cases: [string, Uint8Array, 'json' | 'msgpack', RegExp][] = [
    ['empty body', new Uint8Array(0), 'json', /^body is empty$/],
    ['malformed JSON', utf8('{"inputs": {'), 'json', /^body is not valid JSON: /],
    ['invalid UTF-8', new Uint8Array([0x7b, 0xff, 0x7d]), 'json', /^body is not valid UTF-8$/],
    ['truncated MessagePack', valid.subarray(0, valid.byteLength - 3), 'msgpack', /truncated MessagePack/],
    ['truncated MessagePack header', valid.subarray(0, 1), 'msgpack', /truncated MessagePack/],
    ['trailing bytes', Buffer.concat([valid, new Uint8Array([0])]), 'msgpack', /trailing bytes/],
    ['extension types', ext, 'msgpack', /extension type .* not accepted/],
    [
      'non-string map keys',
      new Uint8Array([0x81, 0x01, 0x02]),
      'msgpack',
      /map key at byte 1 is not a string/,
    ],
    ['body not a map (JSON)', utf8('[1]'), 'json', /^body must be a map with "inputs", got an array$/],
    ['body not a map (MessagePack)', packStandard(5), 'msgpack', /^body must be a map with "inputs", got 5$/],
    ['missing inputs', jsonRequest({ priority: 1 }), 'json', /^body has no "inputs"$/],
    ['inputs not a map', jsonRequest({ inputs: [1] }), 'json', /^inputs must be a map of name -> tensor/],
    [
      'tensor not a map',
      withInput(5),
      'json',
      /^inputs\.x: a tensor must be a map \{dtype, shape, data\}, got 5$/,
    ],
    [
      'tensor missing data',
      withInput({ dtype: 'float32', shape: [1] }),
      'json',
      /^inputs\.x: missing "data"/,
    ],
    [
      'tensor with an extra field',
      withInput({ dtype: 'float32', shape: [1], data: [1], name: 'x' }),
      'json',
      /^inputs\.x: unknown tensor field 'name'/,
    ],
    [
      'unknown dtype',
      withInput({ dtype: 'float8', shape: [1], data: [1] }),
      'json',
      /^inputs\.x\.dtype: unknown dtype "float8"; expected one of float32, /,
    ],
    [
      'shape not an array',
      withInput({ dtype: 'float32', shape: 2, data: [1, 2] }),
      'json',
      /^inputs\.x\.shape: must be an array/,
    ],
    [
      'negative dimension',
      withInput({ dtype: 'float32', shape: [-1], data: [] }),
      'json',
      /^inputs\.x\.shape\[0\]: must be a non-negative integer, got -1$/,
    ],
    [
      'fractional dimension',
      withInput({ dtype: 'float32', shape: [1.5], data: [1] }),
      'json',
      /^inputs\.x\.shape\[0\]: must be a non-negative integer, got 1.5$/,
    ],
    [
      'NaN dimension',
      msgpackRequest({ inputs: { x: { dtype: 'float32', shape: [Number.NaN], data: new Uint8Array(0) } } }),
      'msgpack',
      /^inputs\.x\.shape\[0\]: must be a non-negative integer, got NaN$/,
    ],
    [
      'string dimension',
      withInput({ dtype: 'float32', shape: ['2'], data: [1, 2] }),
      'json',
      /^inputs\.x\.shape\[0\]: must be a non-negative integer, got "2"$/,
    ],
    [
      'rank over the cap',
      withInput({ dtype: 'float32', shape: [1, 1, 1, 1], data: [1] }),
      'json',
      /^inputs\.x\.shape: rank 4 is more than the 3 allowed$/,
    ],
    [
      'dimension over the cap',
      withInput({ dtype: 'float32', shape: [1001], data: [] }),
      'json',
      /^inputs\.x\.shape\[0\]: 1001 is more than the 1000 allowed$/,
    ],
    [
      'element count over the cap',
      withInput({ dtype: 'float32', shape: [1000, 1000, 1000], data: [] }),
      'json',
      /^inputs\.x\.shape: \[1000, 1000, 1000\] has more than the 16777216 elements allowed per tensor$/,
    ],
    [
      'bin length not matching the shape',
      msgpackRequest({ inputs: { x: { dtype: 'float32', shape: [2], data: new Uint8Array(7) } } }),
      'msgpack',
      /^inputs\.x\.data: 7 bytes, but shape \[2\] of float32 needs 8$/,
    ],
    [
      'bool bytes other than 0 and 1',
      msgpackRequest({ inputs: { x: { dtype: 'bool', shape: [3], data: new Uint8Array([1, 0, 2]) } } }),
      'msgpack',
      /^inputs\.x\.data\[2\]: bool bytes must be 0 or 1, got 2$/,
    ],
    [
      'list length not matching the shape',
      withInput({ dtype: 'float32', shape: [2, 2], data: [1, 2, 3] }),
      'json',
      /^inputs\.x\.data: 3 elements, but the shape needs 4$/,
    ],
    [
      'base64 length not matching the shape',
      withInput({ dtype: 'int32', shape: [2], data: { b64: 'AAAAAA==' } }),
      'json',
      /^inputs\.x\.data: 4 bytes, but shape \[2\] of int32 needs 8$/,
    ],
    [
      'invalid base64',
      withInput({ dtype: 'uint8', shape: [2], data: { b64: 'A*A=' } }),
      'json',
      /^inputs\.x\.data\.b64: not valid base64$/,
    ],
    [
      'bin data in a JSON-looking place',
      msgpackRequest({ inputs: { x: { dtype: 'float32', shape: [1], data: 'AAAA' } } }),
      'msgpack',
      /^inputs\.x\.data: expected bin \(the little-endian element bytes\), got "AAAA"$/,
    ],
    [
      'element of the wrong type',
      withInput({ dtype: 'float32', shape: [2], data: [1, 'x'] }),
      'json',
      /^inputs\.x\.data\[1\]: expected a number or "NaN", "Infinity", "-Infinity", got "x"$/,
    ],
    [
      'integer out of range',
      withInput({ dtype: 'int8', shape: [1], data: [300] }),
      'json',
      /^inputs\.x\.data\[0\]: expected an integer from -128 to 127, got 300$/,
    ],
    [
      'fractional integer',
      withInput({ dtype: 'uint16', shape: [1], data: [1.5] }),
      'json',
      /^inputs\.x\.data\[0\]: expected an integer from 0 to 65535, got 1.5$/,
    ],
    [
      'negative uint64',
      withInput({ dtype: 'uint64', shape: [1], data: ['-1'] }),
      'json',
      /^inputs\.x\.data\[0\]: expected an integer from 0 to 18446744073709551615/,
    ],
    [
      'int64 beyond 2^53 as a JSON number (already rounded by the parser)',
      utf8('{"inputs":{"x":{"dtype":"int64","shape":[1],"data":[9007199254740993]}}}'),
      'json',
      /^inputs\.x\.data\[0\]: expected an integer from .* \(beyond 2\^53 as a decimal string\)/,
    ],
    [
      'bool other than true/false/0/1',
      withInput({ dtype: 'bool', shape: [1], data: [2] }),
      'json',
      /^inputs\.x\.data\[0\]: expected true, false, 0 or 1, got 2$/,
    ],
    [
      'string tensor with non-strings',
      withInput({ dtype: 'string', shape: [2], data: ['a', 1] }),
      'json',
      /^inputs\.x\.data\[1\]: expected a string, got 1$/,
    ],
    [
      'string longer than the cap',
      withInput({ dtype: 'string', shape: [2], data: ['abc', 'héllo'] }),
      'json',
      /^inputs\.x\.data\[1\]: string longer than 5 bytes$/,
    ],
    [
      'string tensor given as base64',
      withInput({ dtype: 'string', shape: [1], data: { b64: 'YQ==' } }),
      'json',
      /^inputs\.x\.data: string tensors need an array of strings, got a map$/,
    ],
    [
      'too many inputs',
      jsonRequest({
        inputs: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`x${i}`, oneInput.x])),
      }),
      'json',
      /^inputs holds 65 tensors; at most 64 are allowed$/,
    ],
    [
      'outputs not an array',
      withInput(oneInput.x, { outputs: 'y' }),
      'json',
      /^outputs: must be an array of output names$/,
    ],
    [
      'outputs empty',
      withInput(oneInput.x, { outputs: [] }),
      'json',
      /^outputs: must name at least one output/,
    ],
    [
      'outputs not names',
      withInput(oneInput.x, { outputs: [1] }),
      'json',
      /^outputs\.0: must be an output name$/,
    ],
    [
      'fractional priority',
      withInput(oneInput.x, { priority: 1.5 }),
      'json',
      /^priority: must be an integer$/,
    ],
    [
      'priority as a string',
      withInput(oneInput.x, { priority: '1' }),
      'json',
      /^priority: must be an integer$/,
    ],
    [
      'zero timeoutMs',
      withInput(oneInput.x, { timeoutMs: 0 }),
      'json',
      /^timeoutMs: must be a positive integer/,
    ],
    [
      'fractional timeoutMs',
      withInput(oneInput.x, { timeoutMs: 2.5 }),
      'json',
      /^timeoutMs: must be a positive/,
    ],
    [
      'cache not a boolean',
      withInput(oneInput.x, { cache: 'yes' }),
      'json',
      /^cache: must be true or false$/,
    ],
    ['callback not a map', withInput(oneInput.x, { callback: 'x' }), 'json', /^callback: must be a map/],
    [
      'callback channel not a string',
      withInput(oneInput.x, { callback: { channel: 5 } }),
      'json',
      /^callback\.channel: must be a string$/,
    ],
    [
      'callback url not http(s)',
      withInput(oneInput.x, { callback: { url: 'ftp://example.com/x' } }),
      'json',
      /^callback\.url: must be an absolute http:\/\/ or https:\/\/ URL$/,
    ],
    [
      'callback with an unknown field',
      withInput(oneInput.x, { callback: { topic: 'x' } }),
      'json',
      /^callback: unknown field 'topic'; known fields: channel, url$/,
    ],
    [
      'nested metadata',
      withInput(oneInput.x, { metadata: { a: { b: 1 } } }),
      'json',
      /^metadata\.a: values must be strings, finite numbers or booleans$/,
    ],
    ['metadata not a map', withInput(oneInput.x, { metadata: [1] }), 'json', /^metadata: must be a flat map/],
    [
      'metadata too large',
      withInput(oneInput.x, {
        metadata: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, i])),
      }),
      'json',
      /^metadata: must have at most 32 entries$/,
    ],
    [
      'metadata string too long',
      withInput(oneInput.x, { metadata: { a: 'x'.repeat(1025) } }),
      'json',
      /^metadata\.a: string values must be at most 1024 characters$/,
    ],
    [
      'unknown top-level field',
      withInput(oneInput.x, { input: {} }),
      'json',
      /^body: unknown field 'input'; known fields: inputs, outputs, /,
    ],
    [
      'unknown top-level field (MessagePack)',
      msgpackRequest({ inputs: { x: tensorToMsgpackWire(sampleTensors().f32!) }, wait: 5 }),
      'msgpack',
      /^body: unknown field 'wait'/,
    ],
  ];

  test.each(cases)('%s', (_name, body, format, detail) => {
    let thrown: unknown;
    try {
      decodeInferRequest(body, format, limits);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(BadRequestError);
    expect((thrown as BadRequestError).status).toBe(400);
    expect((thrown as BadRequestError).message).toMatch(detail);
  });

  test('element count is computed without overflow', () => {
    const huge = {
      ...DEFAULT_INPUT_LIMITS,
      maxDimension: Number.MAX_SAFE_INTEGER,
      maxElementsPerTensor: 2 ** 60,
    };
    const body = withInput({ dtype: 'float32', shape: [2 ** 40, 2 ** 40], data: [] });
    expect(() => decodeInferRequest(body, 'json', huge)).toThrow(/has more than the .* elements allowed/);
    // A zero dimension makes any shape empty, however large the others.
    const empty = withInput({ dtype: 'float32', shape: [2 ** 40, 0, 2 ** 40], data: [] });
    expect(decodeInferRequest(empty, 'json', huge).inputs.x?.data).toEqual(new Float32Array(0));
  });
});

describe('stored forms', () => {
  test('encodeTensorMap / decodeTensorMap round trip every dtype', () => {
    const tensors = sampleTensors();
    const bytes = encodeTensorMap(tensors);
    expect(findMessagePackProblem(bytes)).toBeUndefined();
    expect(decodeTensorMap(bytes)).toEqual(tensors);
  });

  test('the tensor map is standard MessagePack: a map of {dtype, shape, data: bin}', () => {
    const bytes = encodeTensorMap({ y: { dtype: 'int16', shape: [2], data: new Int16Array([1, -2]) } });
    // fixmap 1, "y", fixmap 3, "dtype", "int16", "shape", [2], "data", bin8 of 4 bytes
    expect(Array.from(bytes)).toEqual([
      0x81,
      0xa1,
      ...utf8('y'),
      0x83,
      0xa5,
      ...utf8('dtype'),
      0xa5,
      ...utf8('int16'),
      0xa5,
      ...utf8('shape'),
      0x91,
      0x02,
      0xa4,
      ...utf8('data'),
      0xc4,
      0x04,
      0x01,
      0x00,
      0xfe,
      0xff,
    ]);
  });

  test('encodePayload / decodePayload round trip, with and without outputs', () => {
    const inputs = sampleTensors();
    expect(decodePayload(encodePayload({ inputs }))).toEqual({ inputs });
    expect(decodePayload(encodePayload({ inputs, outputs: ['y'] }))).toEqual({ inputs, outputs: ['y'] });
  });

  test('corrupt stored values fail with a plain Error', () => {
    expect(() => decodePayload(new Uint8Array([0x81]))).toThrow(
      /^payload is not valid MessagePack: truncated MessagePack: the value at byte 0 needs 3 bytes, only 1 remain$/,
    );
    expect(() => decodeTensorMap(packStandard({ y: { dtype: 'x' } }))).toThrow(
      /^invalid tensor map: tensors\.y: missing "shape"/,
    );
  });
});

describe('request record', () => {
  const record: RequestRecord = {
    id: newRequestId(),
    model: 'noop',
    version: 2,
    status: 'succeeded',
    cached: false,
    coalesced: true,
    createdAt: '2024-01-01T00:00:00.000Z',
    startedAt: '2024-01-01T00:00:00.010Z',
    finishedAt: '2024-01-01T00:00:00.020Z',
    timings,
    batchSize: 4,
    outputs: sampleTensors(),
    metadata: { user: 'u1' },
  };

  test.each(['json', 'msgpack'] as const)('round trips in %s', (format) => {
    expect(decodeRecord(encodeRecord(record, format), format)).toEqual(record);
  });

  test('JSON output: int64 as strings, non-finite floats as names, float16 as numbers, bool as booleans', () => {
    const json = JSON.parse(new TextDecoder().decode(encodeRecord(record, 'json')));
    expect(Object.keys(json)).toEqual([
      'id',
      'model',
      'version',
      'status',
      'cached',
      'coalesced',
      'createdAt',
      'startedAt',
      'finishedAt',
      'timings',
      'batchSize',
      'outputs',
      'metadata',
    ]);
    expect(json.outputs.i64).toEqual({
      dtype: 'int64',
      shape: [4],
      data: ['-9223372036854775808', '9223372036854775807', '9007199254740993', '-3'],
    });
    expect(json.outputs.u64.data).toEqual(['18446744073709551615', '9007199254740993', '0']);
    expect(json.outputs.f32.data).toEqual([0, -1.5, 3.25, 'NaN', 'Infinity', '-Infinity']);
    expect(json.outputs.f16.data).toEqual([1, -2, 0.5, 65504, 'Infinity', 'NaN']);
    expect(json.outputs.flag.data).toEqual([true, false, true]);
    expect(json.outputs.text.data).toEqual(['a', '', 'ünï 😀']);
    expect(json.outputs.scalar).toEqual({ dtype: 'float32', shape: [], data: [42] });
    expect(json.outputs.empty).toEqual({ dtype: 'float32', shape: [0, 3], data: [] });
  });

  test('leaves out undefined fields and fields that are not part of the record', () => {
    const queued = {
      id: record.id,
      model: 'noop',
      version: 1,
      status: 'queued',
      cached: false,
      createdAt: record.createdAt,
      timings,
      startedAt: undefined,
      tenant: 'secret-tenant',
    } as RequestRecord;
    for (const format of ['json', 'msgpack'] as const) {
      const bytes = encodeRecord(queued, format);
      const decoded = format === 'json' ? JSON.parse(new TextDecoder().decode(bytes)) : unpackStandard(bytes);
      expect(decoded).toEqual({
        id: record.id,
        model: 'noop',
        version: 1,
        status: 'queued',
        cached: false,
        createdAt: record.createdAt,
        timings,
      });
    }
  });

  test('the MessagePack record has no extension types and its tensors are bin', () => {
    const bytes = encodeRecord(record, 'msgpack');
    expect(findMessagePackProblem(bytes)).toBeUndefined();
    const decoded = unpackStandard(bytes) as { outputs: Record<string, { data: unknown }> };
    expect(decoded.outputs.f32?.data).toBeInstanceOf(Uint8Array);
  });
});

describe('completion message', () => {
  const message: CompletionMessage = {
    id: newRequestId(),
    status: 'succeeded',
    model: 'noop',
    version: 1,
    cached: false,
    timings,
    outputs: { y: { dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) } },
  };

  test('id is the first key, then status, model, version, cached, timings, outputs, error', () => {
    const bytes = encodeCompletionMessage({ ...message, error: { code: 'x', message: 'y' } });
    expect(bytes[0]).toBe(0x88); // fixmap of 8 entries
    expect(Array.from(bytes.subarray(1, 4))).toEqual([0xa2, 0x69, 0x64]); // "id"
    expect(bytes[4]).toBe(0xa0 + 22); // fixstr of the 22-character id
    expect(new TextDecoder().decode(bytes.subarray(5, 27))).toBe(message.id);
    expect(Object.keys(unpackStandard(bytes) as object)).toEqual([
      'id',
      'status',
      'model',
      'version',
      'cached',
      'timings',
      'outputs',
      'error',
    ]);
  });

  test('round trips, with no extension types', () => {
    const bytes = encodeCompletionMessage(message);
    expect(findMessagePackProblem(bytes)).toBeUndefined();
    expect(decodeCompletionMessage(bytes)).toEqual(message);
    const failed: CompletionMessage = {
      ...message,
      status: 'failed',
      outputs: undefined,
      error: { code: 'e', message: 'm' },
    };
    const { outputs: _, ...withoutOutputs } = failed;
    expect(decodeCompletionMessage(encodeCompletionMessage(failed))).toEqual(withoutOutputs);
  });

  test('JSON form (webhooks)', () => {
    const json = JSON.parse(new TextDecoder().decode(encodeCompletionMessage(message, 'json')));
    expect(json).toEqual({ ...message, outputs: { y: { dtype: 'float32', shape: [2], data: [1, 2] } } });
    expect(decodeCompletionMessage(encodeCompletionMessage(message, 'json'), 'json')).toEqual(message);
  });

  test('withCompletionMessageId puts another id in the same bytes', () => {
    const follower = newRequestId();
    const bytes = encodeCompletionMessage(message);
    const spliced = withCompletionMessageId(bytes, follower);
    expect(spliced.byteLength).toBe(bytes.byteLength);
    expect(decodeCompletionMessage(spliced)).toEqual({ ...message, id: follower });
    const longer = withCompletionMessageId(bytes, 'x'.repeat(40));
    expect(findMessagePackProblem(longer)).toBeUndefined();
    expect(decodeCompletionMessage(longer).id).toBe('x'.repeat(40));
    expect(() => withCompletionMessageId(packStandard({ status: 'x', id: 'y' }), follower)).toThrow(
      /first key/,
    );
  });
});
