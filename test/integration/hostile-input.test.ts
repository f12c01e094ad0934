/**
 * Hostile input over real HTTP, against the API's Express app on a real Redis: a named list of
 * malformed and oversized bodies, each answered with an exact status as problem+json, after which
 * the server still accepts a valid request; then a few hundred random bodies that must never get a
 * 5xx. The in-process properties (10,500 cases) are in packages/protocol/src/hostile-input.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { decodePayload, packStandard } from '@inferq/protocol';
import { loadModelRepository, type ModelRepository } from '@inferq/repository';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  fittingInputs,
  mutate,
  mutation,
  requestFor,
  SIGNATURES,
  toJson,
  wireValue,
} from '../../packages/protocol/src/hostile-arbitraries.ts';
import { writeAffineModel, writeIdentityModel, writeTwoInputModel } from '../helpers/onnx-models.ts';
import { startAsWorker } from '../helpers/queue.ts';
import { queueOf } from '../helpers/queue-backend.ts';
import { expectProblem, postJson, startTestApi, type TestApi } from '../helpers/test-api.ts';

const MAX_BODY_BYTES = 256 * 1024;

let modelDir: string;
let repository: ModelRepository;
const open: TestApi[] = [];

async function startApi(env: Record<string, string> = {}): Promise<TestApi> {
  const api = await startTestApi({
    redisUrl: inject('redisUrl'),
    repository,
    modelRepository: modelDir,
    env: { MAX_BODY_BYTES: String(MAX_BODY_BYTES), ...env },
  });
  open.push(api);
  return api;
}

const valid = { inputs: { x: { dtype: 'float32', shape: [1, 4], data: [1, 2, 3, 4] } } };

/** The server still takes a valid request after whatever came before. */
async function expectStillServing(api: TestApi): Promise<void> {
  const response = await postJson(api, '/v1/models/affine/infer', { ...valid, cache: false });
  expect(response.status).toBe(202);
  expect(await response.json()).toMatchObject({ status: 'queued', model: 'affine' });
}

function send(api: TestApi, model: string, contentType: string | undefined, body: Uint8Array | string) {
  return api.fetch(`/v1/models/${model}/infer`, {
    method: 'POST',
    headers: contentType === undefined ? {} : { 'content-type': contentType },
    body: typeof body === 'string' ? body : Buffer.from(body),
  });
}

const f32 = (values: number[]) => new Uint8Array(new Float32Array(values).buffer);
const msgpackBody = packStandard({
  inputs: { x: { dtype: 'float32', shape: [1, 4], data: f32([1, 2, 3, 4]) } },
});

beforeAll(async () => {
  modelDir = mkdtempSync(join(tmpdir(), 'inferq-hostile-'));
  writeAffineModel(join(modelDir, 'affine', '1', 'model.onnx'), { scale: 2, bias: 1 });
  writeIdentityModel(join(modelDir, 'ints', '1', 'model.onnx'), 'int32', [4]);
  writeIdentityModel(join(modelDir, 'bytes', '1', 'model.onnx'), 'uint8', []);
  writeIdentityModel(join(modelDir, 'strings', '1', 'model.onnx'), 'string', []);
  writeTwoInputModel(join(modelDir, 'pair', '1', 'model.onnx'));
  repository = await loadModelRepository(modelDir);
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((api) => api.close()));
});

afterAll(() => {
  rmSync(modelDir, { recursive: true, force: true });
});

describe('hostile bodies, each with its exact answer', () => {
  const deepJson = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
  const deepMsgpack = Uint8Array.from([...Array(100_000).fill(0x91), 0xc0]);
  const emptyMaps = Uint8Array.from([0xdd, 0x00, 0x03, 0x0d, 0x40, ...Array(200_000).fill(0x80)]);

  const cases: [string, string, string | undefined, Uint8Array | string, number, RegExp][] = [
    [
      'truncated MessagePack',
      'affine',
      'application/msgpack',
      msgpackBody.subarray(0, msgpackBody.length - 5),
      400,
      /truncated MessagePack/,
    ],
    [
      'MessagePack with trailing bytes',
      'affine',
      'application/msgpack',
      Uint8Array.from([...msgpackBody, 0xc0]),
      400,
      /trailing bytes/,
    ],
    [
      'a MessagePack extension type',
      'affine',
      'application/msgpack',
      Uint8Array.from([0x81, 0xa1, 0x61, 0xd4, 0x01, 0x00]),
      400,
      /extension type/,
    ],
    [
      'an unknown dtype',
      'affine',
      'application/json',
      JSON.stringify({ inputs: { x: { dtype: 'float', shape: [1, 4], data: [1, 2, 3, 4] } } }),
      400,
      /unknown dtype "float"/,
    ],
    [
      'a dtype the model does not take',
      'affine',
      'application/json',
      JSON.stringify({ inputs: { x: { dtype: 'int32', shape: [1, 4], data: [1, 2, 3, 4] } } }),
      422,
      /input 'x' is int32; the model expects float32/,
    ],
    [
      'fewer list elements than the shape',
      'affine',
      'application/json',
      JSON.stringify({ inputs: { x: { dtype: 'float32', shape: [1, 4], data: [1, 2, 3] } } }),
      400,
      /3 elements, but the shape needs 4/,
    ],
    [
      'fewer bytes than the shape',
      'affine',
      'application/msgpack',
      packStandard({ inputs: { x: { dtype: 'float32', shape: [1, 4], data: f32([1, 2, 3]) } } }),
      400,
      /12 bytes, but shape \[1, 4\] of float32 needs 16/,
    ],
    [
      'a bin that is not whole elements',
      'affine',
      'application/msgpack',
      packStandard({ inputs: { x: { dtype: 'float32', shape: [1, 4], data: new Uint8Array(15) } } }),
      400,
      /15 bytes/,
    ],
    [
      'a shape product that overflows',
      'affine',
      'application/json',
      JSON.stringify({ inputs: { x: { dtype: 'float32', shape: [2 ** 31, 2 ** 31, 2 ** 31], data: [] } } }),
      400,
      /shape\[0\]: 2147483648 is more than the 16777216 allowed/,
    ],
    [
      'a shape product beyond 2^53',
      'affine',
      'application/json',
      JSON.stringify({
        inputs: { x: { dtype: 'float32', shape: [2 ** 24, 2 ** 24, 2 ** 24, 2 ** 24], data: [] } },
      }),
      400,
      /has more than the 16777216 elements allowed per tensor/,
    ],
    [
      'a shape product over the element cap',
      'affine',
      'application/json',
      JSON.stringify({ inputs: { x: { dtype: 'float32', shape: [4096, 4096, 2], data: [] } } }),
      400,
      /has more than the 16777216 elements allowed per tensor/,
    ],
    [
      'a 1e9-element shape',
      'affine',
      'application/msgpack',
      packStandard({ inputs: { x: { dtype: 'float32', shape: [1000, 1000, 1000], data: f32([1]) } } }),
      400,
      /\[1000, 1000, 1000\] has more than the 16777216 elements allowed/,
    ],
    [
      'a negative dimension',
      'affine',
      'application/json',
      JSON.stringify({ inputs: { x: { dtype: 'float32', shape: [-1, 4], data: [1, 2, 3, 4] } } }),
      400,
      /shape\[0\]: must be a non-negative integer, got -1/,
    ],
    [
      'a fractional dimension',
      'affine',
      'application/json',
      JSON.stringify({ inputs: { x: { dtype: 'float32', shape: [0.5, 8], data: [1, 2, 3, 4] } } }),
      400,
      /shape\[0\]: must be a non-negative integer, got 0.5/,
    ],
    [
      'a dimension given as a string',
      'affine',
      'application/json',
      JSON.stringify({ inputs: { x: { dtype: 'float32', shape: ['1', 4], data: [1, 2, 3, 4] } } }),
      400,
      /shape\[0\]: must be a non-negative integer, got "1"/,
    ],
    [
      'NaN for an integer tensor',
      'ints',
      'application/json',
      JSON.stringify({ inputs: { x: { dtype: 'int32', shape: [1, 4], data: ['NaN', 1, 2, 3] } } }),
      400,
      /data\[0\]: expected an integer/,
    ],
    [
      'Infinity for an integer tensor',
      'ints',
      'application/json',
      JSON.stringify({ inputs: { x: { dtype: 'int32', shape: [1, 4], data: [1, 'Infinity', 2, 3] } } }),
      400,
      /data\[1\]: expected an integer/,
    ],
    [
      'NaN as a float tensor for an integer model',
      'ints',
      'application/msgpack',
      packStandard({ inputs: { x: { dtype: 'float32', shape: [1, 4], data: f32([Number.NaN, 1, 2, 3]) } } }),
      422,
      /is float32; the model expects int32/,
    ],
    [
      'bare NaN in JSON',
      'affine',
      'application/json',
      '{"inputs":{"x":{"dtype":"float32","shape":[1,4],"data":[NaN,1,2,3]}}}',
      400,
      /not valid JSON/,
    ],
    [
      '100,000 nested JSON arrays',
      'affine',
      'application/json',
      deepJson,
      400,
      /JSON nested deeper than 32 levels/,
    ],
    [
      '100,000 nested MessagePack arrays',
      'affine',
      'application/msgpack',
      deepMsgpack,
      400,
      /MessagePack nested deeper than 32 levels/,
    ],
    [
      '200,000 empty MessagePack maps',
      'affine',
      'application/msgpack',
      emptyMaps,
      400,
      /more than 274 maps and arrays/,
    ],
    [
      'an unknown top-level field',
      'affine',
      'application/json',
      JSON.stringify({ ...valid, model: 'affine' }),
      400,
      /body: unknown field 'model'; known fields: inputs, outputs/,
    ],
    [
      'an unknown tensor field',
      'affine',
      'application/json',
      JSON.stringify({ inputs: { x: { ...valid.inputs.x, layout: 'NCHW' } } }),
      400,
      /inputs\.x: unknown tensor field 'layout'/,
    ],
    [
      'an unknown callback field',
      'affine',
      'application/json',
      JSON.stringify({ ...valid, callback: { channel: 'c', topic: 't' } }),
      400,
      /callback: unknown field 'topic'/,
    ],
    [
      'a body over MAX_BODY_BYTES',
      'affine',
      'application/json',
      JSON.stringify({ ...valid, metadata: { pad: 'x'.repeat(MAX_BODY_BYTES) } }),
      413,
      /262144 bytes \(MAX_BODY_BYTES\)/,
    ],
    [
      'a MessagePack body over MAX_BODY_BYTES',
      'affine',
      'application/msgpack',
      packStandard({
        inputs: { x: { dtype: 'uint8', shape: [MAX_BODY_BYTES], data: new Uint8Array(MAX_BODY_BYTES) } },
      }),
      413,
      /MAX_BODY_BYTES/,
    ],
    [
      'a string with a NUL (onnxruntime would cut it there)',
      'strings',
      'application/json',
      JSON.stringify({ inputs: { x: { dtype: 'string', shape: [2], data: ['ok', 'abc\u0000def'] } } }),
      422,
      /input 'x' element 1 holds a NUL character/,
    ],
    [
      'a MessagePack string with a NUL',
      'strings',
      'application/msgpack',
      packStandard({ inputs: { x: { dtype: 'string', shape: [1], data: ['abc\u0000def'] } } }),
      422,
      /input 'x' element 0 holds a NUL character/,
    ],
    [
      'a string with a lone surrogate',
      'strings',
      'application/json',
      JSON.stringify({ inputs: { x: { dtype: 'string', shape: [1], data: ['a\ud800b'] } } }),
      422,
      /input 'x' element 0 holds a lone UTF-16 surrogate/,
    ],
    [
      'a MessagePack string that is not UTF-8',
      'strings',
      'application/msgpack',
      Uint8Array.from([
        ...packStandard({ inputs: { x: { dtype: 'string', shape: [1], data: ['\u00e9'] } } }).slice(0, -2),
        0xc3,
        0x28,
      ]),
      400,
      /MessagePack string at byte \d+ is not valid UTF-8/,
    ],
    [
      'inputs that disagree on the batch axis (JSON)',
      'pair',
      'application/json',
      JSON.stringify({
        inputs: {
          a: { dtype: 'float32', shape: [1, 3], data: [1, 2, 3] },
          b: { dtype: 'float32', shape: [2, 3], data: [1, 2, 3, 4, 5, 6] },
        },
      }),
      422,
      /inputs disagree on the batch axis \(axis 0\): 'b' has 2 rows, the inputs before it 1/,
    ],
    [
      'inputs that disagree on the batch axis (MessagePack)',
      'pair',
      'application/msgpack',
      packStandard({
        inputs: {
          a: { dtype: 'float32', shape: [2, 3], data: f32([1, 2, 3, 4, 5, 6]) },
          b: { dtype: 'float32', shape: [1, 3], data: f32([1, 2, 3]) },
        },
      }),
      422,
      /'b' has 1 rows, the inputs before it 2/,
    ],
    ['text/plain', 'affine', 'text/plain', JSON.stringify(valid), 415, /got text\/plain/],
    ['no content type', 'affine', undefined, new Uint8Array([1, 2]), 415, /got none/],
    [
      'JSON sent as MessagePack',
      'affine',
      'application/msgpack',
      JSON.stringify(valid),
      400,
      /not valid MessagePack/,
    ],
  ];

  it.each(cases)('%s', async (_name, model, contentType, body, status, detail) => {
    const api = await startApi();
    await expectProblem(await send(api, model, contentType, body), status, detail);
    await expectStillServing(api);
  });

  it('refuses a bulk body with one request whose inputs disagree on the batch axis, in both formats, accepting nothing', async () => {
    const api = await startApi();
    const agree = { a: [1, 3], b: [1, 3] };
    const disagree = { a: [1, 3], b: [2, 3] };
    const tensors = (format: 'json' | 'msgpack', shapes: Record<string, number[]>) =>
      Object.fromEntries(
        Object.entries(shapes).map(([name, shape]) => {
          const values = new Array((shape[0] ?? 0) * 3).fill(1);
          return [name, { dtype: 'float32', shape, data: format === 'json' ? values : f32(values) }];
        }),
      );
    for (const format of ['json', 'msgpack'] as const) {
      const requests = [{ inputs: tensors(format, agree) }, { inputs: tensors(format, disagree) }];
      const before = await queueOf(api.store).depth('pair', 1);
      const response = await api.fetch('/v1/models/pair/infer:bulk', {
        method: 'POST',
        headers: { 'content-type': `application/${format}` },
        body: format === 'json' ? JSON.stringify({ requests }) : Buffer.from(packStandard({ requests })),
      });
      await expectProblem(
        response,
        422,
        /^requests\[1\]: inputs disagree on the batch axis \(axis 0\): 'b' has 2 rows/,
      );
      expect(await queueOf(api.store).depth('pair', 1)).toBe(before);
    }
    await expectStillServing(api);
  });

  it('takes NaN and infinities in float tensors: as strings in JSON, as any bits in MessagePack bin', async () => {
    const api = await startApi();
    const asJson = await postJson(api, '/v1/models/affine/infer', {
      inputs: { x: { dtype: 'float32', shape: [1, 4], data: ['NaN', 'Infinity', '-Infinity', 0] } },
    });
    expect(asJson.status).toBe(202);
    const { id } = (await asJson.json()) as { id: string };
    // What the worker would read: the very values sent.
    const [claim] = await startAsWorker(api.store, [id], Date.now());
    if (claim?.state !== 'run') throw new Error(`claim dropped: ${JSON.stringify(claim)}`);
    expect(Array.from(decodePayload(claim.payload).inputs.x?.data as Float32Array)).toEqual([
      Number.NaN,
      Infinity,
      -Infinity,
      0,
    ]);
    const asMsgpack = await send(
      api,
      'affine',
      'application/msgpack',
      packStandard({
        inputs: { x: { dtype: 'float32', shape: [1, 4], data: f32([Number.NaN, Infinity, -Infinity, 0]) } },
      }),
    );
    expect(asMsgpack.status).toBe(202);
  });

  it('applies every cap from its environment variable', async () => {
    const api = await startApi({
      MAX_TENSOR_ELEMENTS: '8',
      MAX_TENSOR_RANK: '2',
      MAX_DIMENSION: '6',
      MAX_STRING_BYTES: '4',
      MAX_INPUTS: '1',
      MAX_LIST_ELEMENTS: '6',
    });
    const tensor = (shape: number[], data: unknown) => ({ dtype: 'float32', shape, data });
    const refusals: [unknown, RegExp][] = [
      [{ inputs: { x: tensor([1, 1, 4], [1, 2, 3, 4]) } }, /rank 3 is more than the 2 allowed/],
      [{ inputs: { x: tensor([7, 0], []) } }, /shape\[0\]: 7 is more than the 6 allowed/],
      [
        { inputs: { x: tensor([3, 4], { b64: Buffer.alloc(48).toString('base64') }) } },
        /more than the 8 elements allowed per tensor/,
      ],
      [
        { inputs: { x: tensor([2, 4], [1, 2, 3, 4, 5, 6, 7, 8]) } },
        /8 elements sent as lists, more than the 6 allowed/,
      ],
      [{ inputs: { x: { dtype: 'string', shape: [1], data: ['12345'] } } }, /string longer than 4 bytes/],
      [
        { inputs: { x: tensor([1, 4], [1, 2, 3, 4]), y: tensor([1], [1]) } },
        /holds 2 tensors; at most 1 are allowed/,
      ],
    ];
    for (const [body, detail] of refusals) {
      await expectProblem(await postJson(api, '/v1/models/affine/infer', body), 400, detail);
    }
    // Within every cap: accepted (binary data does not count against MAX_LIST_ELEMENTS).
    const b64 = { inputs: { x: tensor([2, 4], { b64: Buffer.alloc(32).toString('base64') }) } };
    expect((await postJson(api, '/v1/models/affine/infer', b64)).status).toBe(202);
    await expectStillServing(api);
  });
});

describe('random bodies over HTTP', () => {
  it('never answer 5xx: 420 of them, each 202 or a 4xx problem+json', async () => {
    const api = await startApi({ MAX_INPUTS: '3', MAX_TENSOR_RANK: '4', MAX_LIST_ELEMENTS: '80' });
    // Near-valid bodies are made to fit the affine model (SIGNATURES[0]) so that some are accepted.
    const affine = SIGNATURES.slice(0, 1);
    const body = fc.oneof(
      fc.record({ format: fc.constant('msgpack' as const), bytes: fc.uint8Array({ maxLength: 200 }) }),
      fc.record({ format: fc.constant('json' as const), bytes: fc.jsonValue().map(toJson) }),
      fc.record({
        format: fc.constant('msgpack' as const),
        bytes: wireValue.map((v) => Uint8Array.from(packStandard(v))),
      }),
      fc.record({ format: fc.constant('json' as const), bytes: requestFor('json', affine).map(toJson) }),
      fc.record({
        format: fc.constant('json' as const),
        bytes: fittingInputs('json', affine).map((inputs) => toJson({ inputs })),
      }),
      fc.record({
        format: fc.constant('msgpack' as const),
        bytes: requestFor('msgpack', affine).map((r) => Uint8Array.from(packStandard(r))),
      }),
      fc.record({
        format: fc.constant('msgpack' as const),
        bytes: fc
          .tuple(requestFor('msgpack'), fc.array(mutation, { minLength: 1, maxLength: 2 }))
          .map(([r, m]) => mutate(Uint8Array.from(packStandard(r)), m)),
      }),
    );
    const seen = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(body, async ({ format, bytes }) => {
        const response = await send(api, 'affine', `application/${format}`, bytes);
        seen.set(response.status, (seen.get(response.status) ?? 0) + 1);
        if (response.status === 202) {
          expect(response.headers.get('content-type')).toMatch(new RegExp(`^application/${format}`));
          await response.arrayBuffer();
          return;
        }
        expect(response.status).toBeGreaterThanOrEqual(400);
        expect(response.status).toBeLessThan(500);
        await expectProblem(response, response.status);
      }),
      { numRuns: 420 },
    );
    // Both outcomes were reached, so the property says something.
    expect(seen.get(202)).toBeGreaterThan(0);
    expect(seen.get(400)).toBeGreaterThan(0);
    expect(seen.get(422)).toBeGreaterThan(0);
    await expectStillServing(api);
  });
});

describe('bodies at and around the limits, in every data form and both formats', () => {
  // The default limits: a body up to 16 MiB, 1 Mi listed elements, 64 KiB per string.
  const LIMIT = 16 * 1024 * 1024;
  const LISTED = 1024 * 1024;
  const STRING_BYTES = 65536;

  /** The JSON body of a uint8 tensor [n] sent as b64, padded with spaces to exactly `size` bytes. */
  function b64Body(size: number, corrupt = false): string {
    const skeleton = (n: number, b64: string) =>
      `{"inputs":{"x":{"dtype":"uint8","shape":[${n}],"data":{"b64":"${b64}"}}}}`;
    let n = Math.floor(((size - skeleton(0, '').length - 8) * 3) / 4);
    n -= n % 3;
    let b64 = Buffer.alloc(n, 7).toString('base64');
    if (corrupt) b64 = `${b64.slice(0, -1)}*`;
    const body = skeleton(n, b64);
    return body + ' '.repeat(size - body.length);
  }

  /** A MessagePack body of a uint8 tensor [n] as bin, exactly `size` bytes. */
  function binBody(size: number): Uint8Array {
    const body = (n: number) =>
      packStandard({ inputs: { x: { dtype: 'uint8', shape: [n], data: new Uint8Array(n) } } });
    const overhead = body(LIMIT / 2).byteLength - LIMIT / 2;
    const bytes = Uint8Array.from(body(size - overhead));
    expect(bytes.byteLength).toBe(size);
    return bytes;
  }

  const zeros = (rows: number) => ({
    inputs: { x: { dtype: 'float32', shape: [rows, 4], data: new Array(rows * 4).fill(0) } },
  });

  it('serves b64 up to the body limit and refuses one byte more (413) or a bad character at the end (400)', async () => {
    const api = await startApi({ MAX_BODY_BYTES: String(LIMIT) });
    // The reported case: 4 MB of float32 as b64 in a 5.3 MB body answered 500.
    const floats = Buffer.alloc(4 * 1024 * 1024).toString('base64');
    const reported = await postJson(api, '/v1/models/affine/infer', {
      inputs: { x: { dtype: 'float32', shape: [262144, 4], data: { b64: floats } } },
      cache: false,
    });
    expect(reported.status).toBe(202);
    await reported.arrayBuffer();
    const atLimit = await send(api, 'bytes', 'application/json', b64Body(LIMIT));
    expect(atLimit.status).toBe(202);
    await atLimit.arrayBuffer();
    await expectProblem(
      await send(api, 'bytes', 'application/json', b64Body(LIMIT + 1)),
      413,
      /16777216 bytes/,
    );
    await expectProblem(
      await send(api, 'bytes', 'application/json', b64Body(LIMIT, true)),
      400,
      /inputs\.x\.data\.b64: not valid base64/,
    );
    await expectStillServing(api);
  });

  it('serves MessagePack bin up to the body limit and refuses one byte more (413)', async () => {
    const api = await startApi({ MAX_BODY_BYTES: String(LIMIT) });
    const atLimit = await send(api, 'bytes', 'application/msgpack', binBody(LIMIT));
    expect(atLimit.status).toBe(202);
    await atLimit.arrayBuffer();
    await expectProblem(await send(api, 'bytes', 'application/msgpack', binBody(LIMIT + 1)), 413);
    await expectStillServing(api);
  });

  it('serves lists up to MAX_LIST_ELEMENTS in both formats, and refuses one row more or a body-sized list (400)', async () => {
    const api = await startApi({ MAX_BODY_BYTES: String(LIMIT) });
    const rows = LISTED / 4;
    for (const [format, encode] of [
      ['json', (v: unknown) => JSON.stringify(v)],
      ['msgpack', (v: unknown) => packStandard(v)],
    ] as const) {
      const within = await send(
        api,
        'affine',
        `application/${format}`,
        encode({ ...zeros(rows), cache: false }),
      );
      expect(within.status).toBe(202);
      await within.arrayBuffer();
      await expectProblem(
        await send(api, 'affine', `application/${format}`, encode(zeros(rows + 1))),
        400,
        /1048580 elements sent as lists, more than the 1048576 allowed/,
      );
    }
    // 16 MiB of "0,": 8 Mi values, refused before anything is built.
    const huge = `{"inputs":{"x":{"dtype":"float32","shape":[2097152,4],"data":[${'0,'.repeat(LIMIT / 2 - 40)}0]}}}`;
    expect(huge.length).toBeLessThanOrEqual(LIMIT);
    await expectProblem(await send(api, 'affine', 'application/json', huge), 400, /refused/);
    await expectStillServing(api);
  });

  it('serves strings up to MAX_STRING_BYTES each and the body limit in all, in both formats', async () => {
    const api = await startApi({ MAX_BODY_BYTES: String(LIMIT) });
    const long = 'é'.repeat(STRING_BYTES / 2);
    const strings = (n: number, text: string) => ({
      inputs: { x: { dtype: 'string', shape: [n], data: new Array(n).fill(text) } },
    });
    for (const [format, encode] of [
      ['json', (v: unknown) => JSON.stringify(v)],
      ['msgpack', (v: unknown) => packStandard(v)],
    ] as const) {
      // 255 strings of 64 KiB: just under 16 MiB.
      const full = encode(strings(255, long));
      expect(full.length).toBeLessThanOrEqual(LIMIT);
      const served = await send(api, 'strings', `application/${format}`, full);
      expect(served.status).toBe(202);
      await served.arrayBuffer();
      await expectProblem(
        await send(api, 'strings', `application/${format}`, encode(strings(1, `${long}a`))),
        400,
        /inputs\.x\.data\[0\]: string longer than 65536 bytes/,
      );
      const many = await send(api, 'strings', `application/${format}`, encode(strings(LISTED, '')));
      expect(many.status).toBe(202);
      await many.arrayBuffer();
      await expectProblem(
        await send(api, 'strings', `application/${format}`, encode(strings(LISTED + 1, ''))),
        400,
        /1048577 elements sent as lists/,
      );
    }
    await expectStillServing(api);
  });

  it('serves a bulk body of b64 requests up to the body limit', async () => {
    const api = await startApi({ MAX_BODY_BYTES: String(LIMIT) });
    const each = Buffer.alloc(180_000, 3).toString('base64');
    const requests = Array.from({ length: 64 }, () => ({
      inputs: { x: { dtype: 'uint8', shape: [180_000], data: { b64: each } } },
    }));
    const body = JSON.stringify({ requests });
    expect(body.length).toBeLessThanOrEqual(LIMIT);
    const response = await api.fetch('/v1/models/bytes/infer:bulk', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(response.status).toBe(202);
    expect(((await response.json()) as { ids: string[] }).ids).toHaveLength(64);
  });
});

describe('compressed bodies', () => {
  const json = Buffer.from(JSON.stringify({ ...valid, cache: false }));
  const encoded: [string, Buffer][] = [
    ['gzip', gzipSync(json)],
    ['deflate', deflateSync(json)],
    ['br', brotliCompressSync(json)],
  ];

  function sendEncoded(api: TestApi, encoding: string, body: Uint8Array): Promise<Response> {
    return api.fetch('/v1/models/affine/infer', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': encoding },
      body: Buffer.from(body),
    });
  }

  it.each(encoded)(
    'serves a %s body, and answers 400 when it is corrupt or truncated',
    async (encoding, body) => {
      const api = await startApi();
      const served = await sendEncoded(api, encoding, body);
      expect(served.status).toBe(202);
      await served.arrayBuffer();
      const corrupt = Buffer.from(body);
      corrupt.fill(0x55, 2, Math.min(corrupt.length, 12));
      await expectProblem(await sendEncoded(api, encoding, corrupt), 400, /could not be decoded/);
      await expectProblem(
        await sendEncoded(api, encoding, body.subarray(0, body.length - 6)),
        400,
        /could not be decoded/,
      );
      await expectProblem(
        await sendEncoded(api, encoding, Buffer.from('not compressed at all')),
        400,
        /could not be decoded/,
      );
      await expectStillServing(api);
    },
  );

  it('measures a compressed body inflated: up to the limit is served, one byte more is 413', async () => {
    const api = await startApi();
    const body = (size: number) => {
      const text = JSON.stringify({ ...valid, cache: false });
      return gzipSync(Buffer.from(text + ' '.repeat(size - text.length)));
    };
    const atLimit = await sendEncoded(api, 'gzip', body(MAX_BODY_BYTES));
    expect(atLimit.status).toBe(202);
    await atLimit.arrayBuffer();
    await expectProblem(await sendEncoded(api, 'gzip', body(MAX_BODY_BYTES + 1)), 413, /MAX_BODY_BYTES/);
    await expectProblem(await sendEncoded(api, 'compress', gzipSync(json)), 415, /Content-Encoding/);
  });
});
