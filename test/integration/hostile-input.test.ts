/**
 * Hostile input over real HTTP, against the API's Express app on a real Redis: a named list of
 * malformed and oversized bodies, each answered with an exact status as problem+json, after which
 * the server still accepts a valid request; then a few hundred random bodies that must never get a
 * 5xx. The in-process properties (10,500 cases) are in packages/protocol/src/hostile-input.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
import { writeAffineModel, writeIdentityModel } from '../helpers/onnx-models.ts';
import { startAsWorker } from '../helpers/queue.ts';
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
