import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { newRequestId, packStandard, unpackStandard } from '@inferq/protocol';
import { loadModelRepository, type ModelRepository } from '@inferq/repository';
import { queueName, type RequestStore } from '@inferq/store';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { writeAffineModel } from '../helpers/onnx-models.ts';
import { startAsWorker } from '../helpers/queue.ts';
import { queueOf } from '../helpers/queue-backend.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis-server.ts';
import {
  completeAsWorker,
  expectProblem as expectProblemBody,
  postJson,
  startTestApi,
  type TestApi,
} from '../helpers/test-api.ts';

const MAX_BODY_BYTES = 4096;

let modelDir: string;
let repository: ModelRepository;

/** One API server on an ephemeral port over real Redis, with its own key prefix. */
type Api = TestApi;

const open: Api[] = [];

async function startApi(env: Record<string, string> = {}, redisUrl = inject('redisUrl')): Promise<Api> {
  const api = await startTestApi({
    redisUrl,
    repository,
    modelRepository: modelDir,
    env: { MAX_BODY_BYTES: String(MAX_BODY_BYTES), ...env },
  });
  open.push(api);
  return api;
}

const xTensor = { dtype: 'float32', shape: [1, 4], data: [1, 2, 3, 4] };

function affineBody(values = [1, 2, 3, 4], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { inputs: { x: { ...xTensor, data: values } }, ...extra };
}

/** The value of the one sample of `name` whose labels include all of `labels`. */
function sampleValue(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^(\w+)\{(.*)\} (\S+)$/.exec(line);
    if (match?.[1] !== name) continue;
    const present = new Set((match[2] ?? '').split(','));
    if (Object.entries(labels).every(([key, value]) => present.has(`${key}="${value}"`)))
      return Number(match[3]);
  }
  return undefined;
}

async function expectProblem(api: Api, response: Response, status: number, detail?: RegExp): Promise<void> {
  await expectProblemBody(response, status, detail);
  // The server keeps serving after every error.
  const health = await api.fetch('/healthz');
  expect(health.status).toBe(200);
}

/** The id of the next request that shows up in the model's queue (the API generated it, the test cannot know it). */
async function nextQueuedId(store: RequestStore, seen: ReadonlySet<string> = new Set()): Promise<string> {
  // The version's queued set: the submit script adds each request it enqueues, on every backend.
  const queued = store.keys.queued(queueName('affine', 2));
  for (;;) {
    for (const id of await store.redis.zrange(queued, 0, -1)) if (!seen.has(id)) return id;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Reads server-sent events as they arrive. */
function sseReader(response: Response): { next(): Promise<{ event: string; data: string } | undefined> } {
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  return {
    async next() {
      for (;;) {
        const end = buffer.indexOf('\n\n');
        if (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const lines = block.split('\n').filter((line) => !line.startsWith(':'));
          if (lines.length === 0) continue;
          const field = (name: string) =>
            lines
              .filter((line) => line.startsWith(`${name}:`))
              .map((line) => line.slice(name.length + 1).trimStart())
              .join('\n');
          return { event: field('event'), data: field('data') };
        }
        const { done, value } = await reader.read();
        if (done) return undefined;
        buffer += decoder.decode(value, { stream: true });
      }
    },
  };
}

beforeAll(async () => {
  modelDir = mkdtempSync(join(tmpdir(), 'inferq-api-models-'));
  writeAffineModel(join(modelDir, 'affine', '1', 'model.onnx'), { scale: 3, bias: 0 });
  writeAffineModel(join(modelDir, 'affine', '2', 'model.onnx'), { scale: 2, bias: 1 });
  writeFileSync(
    join(modelDir, 'affine', 'config.json'),
    JSON.stringify({ maxBatchSize: 8, maxBatchDelayMs: 3 }),
  );
  repository = await loadModelRepository(modelDir);
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((api) => api.close()));
});

afterAll(() => {
  rmSync(modelDir, { recursive: true, force: true });
});

describe('POST /v1/models/{model}/infer', () => {
  it('accepts a JSON request with 202, a Location, and a queued record behind it', async () => {
    const api = await startApi();
    const response = await postJson(api, '/v1/models/affine/infer', affineBody());
    expect(response.status).toBe(202);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    const accepted = (await response.json()) as { id: string };
    expect(accepted).toEqual({ id: expect.any(String), status: 'queued', model: 'affine', version: 2 });
    expect(response.headers.get('location')).toBe(`/v1/requests/${accepted.id}`);

    const record = await api.fetch(`/v1/requests/${accepted.id}`);
    expect(record.status).toBe(200);
    expect(await record.json()).toEqual({
      id: accepted.id,
      model: 'affine',
      version: 2,
      status: 'queued',
      cached: false,
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      timings: { queueMs: 0, batchWaitMs: 0, inferMs: 0, totalMs: 0 },
    });
    expect(await queueOf(api.store).depth('affine', 2)).toBe(1);
  });

  it('submits to an explicit version', async () => {
    const api = await startApi();
    const response = await postJson(api, '/v1/models/affine/versions/1/infer', affineBody());
    expect(response.status).toBe(202);
    expect(await response.json()).toMatchObject({ status: 'queued', model: 'affine', version: 1 });
    expect(await queueOf(api.store).depth('affine', 1)).toBe(1);
  });

  it('accepts MessagePack and answers in MessagePack unless Accept asks for JSON', async () => {
    const api = await startApi();
    const body = packStandard({
      inputs: {
        x: { dtype: 'float32', shape: [1, 4], data: Buffer.from(new Float32Array([1, 2, 3, 4]).buffer) },
      },
      metadata: { source: 'test' },
    });
    const asMsgpack = await api.fetch('/v1/models/affine/infer', {
      method: 'POST',
      headers: { 'content-type': 'application/msgpack' },
      body: Buffer.from(body),
    });
    expect(asMsgpack.status).toBe(202);
    expect(asMsgpack.headers.get('content-type')).toMatch(/^application\/msgpack/);
    const accepted = unpackStandard(new Uint8Array(await asMsgpack.arrayBuffer())) as { id: string };
    expect(accepted).toMatchObject({ status: 'queued', model: 'affine', version: 2 });

    const asJson = await api.fetch('/v1/models/affine/infer', {
      method: 'POST',
      headers: { 'content-type': 'application/x-msgpack', accept: 'application/json' },
      body: Buffer.from(body),
    });
    expect(asJson.status).toBe(202);
    expect(asJson.headers.get('content-type')).toMatch(/^application\/json/);

    const record = await api.fetch(`/v1/requests/${accepted.id}`, {
      headers: { accept: 'application/msgpack' },
    });
    expect(record.headers.get('content-type')).toMatch(/^application\/msgpack/);
    expect(unpackStandard(new Uint8Array(await record.arrayBuffer()))).toMatchObject({
      id: accepted.id,
      status: 'queued',
      metadata: { source: 'test' },
    });
  });

  it('waits with Prefer: wait=N and answers 200 with the finished record', async () => {
    const api = await startApi();
    const pending = postJson(api, '/v1/models/affine/infer', affineBody(), {
      prefer: 'respond-async, wait=60',
    });
    const id = await nextQueuedId(api.store);
    await completeAsWorker(api.store, id, 2, [3, 5, 7, 9]);
    const response = await pending;
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      id,
      status: 'succeeded',
      cached: false,
      batchSize: 1,
      outputs: { y: { dtype: 'float32', shape: [1, 4], data: [3, 5, 7, 9] } },
    });

    // The same inputs again: served from the cache at once.
    const hit = await postJson(api, '/v1/models/affine/infer', affineBody());
    expect(hit.status).toBe(200);
    expect(await hit.json()).toMatchObject({
      status: 'succeeded',
      cached: true,
      outputs: { y: { data: [3, 5, 7, 9] } },
    });
    // Opting out of the cache queues a new run.
    const fresh = await postJson(api, '/v1/models/affine/infer', affineBody(undefined, { cache: false }));
    expect(fresh.status).toBe(202);
  });

  it('answers 202 when Prefer: wait=N passes without a result', async () => {
    const api = await startApi({ MAX_WAIT_SECONDS: '1' });
    const response = await postJson(api, '/v1/models/affine/infer', affineBody(), { prefer: 'wait=30' });
    expect(response.status).toBe(202);
    expect(await response.json()).toMatchObject({ status: 'queued', model: 'affine' });
  });

  it.each([
    ['malformed JSON', 'application/json', '{"inputs": {', /not valid JSON/],
    ['malformed MessagePack', 'application/msgpack', Buffer.from([0x82, 0xa6]), /MessagePack/],
    ['a body without inputs', 'application/json', '{"outputs": ["y"]}', /inputs/],
    ['data not matching the shape', 'application/json', JSON.stringify(affineBody([1, 2, 3])), /./],
    ['an empty body', 'application/json', '', /empty/],
  ])('answers 400 for %s', async (_name, contentType, body, detail) => {
    const api = await startApi();
    const response = await api.fetch('/v1/models/affine/infer', {
      method: 'POST',
      headers: { 'content-type': contentType },
      body,
    });
    await expectProblem(api, response, 400, detail);
  });

  it('answers 404 for an unknown model or version', async () => {
    const api = await startApi();
    await expectProblem(api, await postJson(api, '/v1/models/nope/infer', affineBody()), 404, /nope/);
    await expectProblem(
      api,
      await postJson(api, '/v1/models/affine/versions/9/infer', affineBody()),
      404,
      /9/,
    );
    await expectProblem(api, await postJson(api, '/v1/models/affine/versions/one/infer', affineBody()), 404);
    await expectProblem(
      api,
      await postJson(api, '/v1/models/nope/infer:bulk', { requests: [] }),
      404,
      /nope/,
    );
  });

  it('answers 413 for a body over MAX_BODY_BYTES', async () => {
    const api = await startApi();
    const big = affineBody(undefined, { metadata: { pad: 'x'.repeat(MAX_BODY_BYTES) } });
    await expectProblem(api, await postJson(api, '/v1/models/affine/infer', big), 413, /4096/);
  });

  it('reads a body sent in chunks without a Content-Length, and answers 413 once one passes MAX_BODY_BYTES', async () => {
    const api = await startApi();
    const chunked = async (parts: Buffer[]): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = httpRequest(
          `${api.url}/v1/models/affine/infer`,
          { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } },
          (res) => {
            let body = '';
            res.on('data', (chunk: Buffer) => {
              body += chunk.toString();
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on('error', reject);
        for (const part of parts) req.write(part);
        req.end();
      });
    const json = Buffer.from(JSON.stringify(affineBody([5, 6, 7, 8])));
    const accepted = await chunked([json.subarray(0, 10), json.subarray(10, 30), json.subarray(30)]);
    expect(accepted.status).toBe(202);
    expect(JSON.parse(accepted.body)).toMatchObject({ status: 'queued', model: 'affine' });
    const tooMuch = await chunked([Buffer.alloc(3000, 0x20), Buffer.alloc(3000, 0x20)]);
    expect(tooMuch.status).toBe(413);
    expect(JSON.parse(tooMuch.body)).toMatchObject({ status: 413, detail: expect.stringMatching(/4096/) });
    expect((await api.fetch('/healthz')).status).toBe(200);
  });

  it('inflates a gzip-encoded body, within the same MAX_BODY_BYTES', async () => {
    const api = await startApi();
    const zipped = await api.fetch('/v1/models/affine/infer', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gzipSync(JSON.stringify(affineBody([9, 9, 9, 9]))),
    });
    expect(zipped.status).toBe(202);
    // A small compressed body that inflates past the limit is refused as too large.
    const bomb = gzipSync(
      JSON.stringify(affineBody(undefined, { metadata: { pad: 'x'.repeat(MAX_BODY_BYTES) } })),
    );
    expect(bomb.byteLength).toBeLessThan(MAX_BODY_BYTES);
    const refused = await api.fetch('/v1/models/affine/infer', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: bomb,
    });
    await expectProblem(api, refused, 413, /4096/);
  });

  it('answers 415 for an unknown or missing content type', async () => {
    const api = await startApi();
    const body = JSON.stringify(affineBody());
    const asText = await api.fetch('/v1/models/affine/infer', {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body,
    });
    await expectProblem(api, asText, 415, /text\/plain/);
    const untyped = await api.fetch('/v1/models/affine/infer', {
      method: 'POST',
      body: new Uint8Array([1, 2]),
    });
    await expectProblem(api, untyped, 415);
  });

  it.each([
    ['a wrong dtype', { inputs: { x: { dtype: 'int32', shape: [1, 4], data: [1, 2, 3, 4] } } }, /int32/],
    ['a wrong rank', { inputs: { x: { dtype: 'float32', shape: [4], data: [1, 2, 3, 4] } } }, /rank/],
    [
      'a wrong fixed dimension',
      { inputs: { x: { dtype: 'float32', shape: [2, 2], data: [1, 2, 3, 4] } } },
      /axis 1/,
    ],
    [
      'an unknown input',
      { inputs: { x: xTensor, z: { dtype: 'float32', shape: [1, 1], data: [0] } } },
      /unknown input 'z'/,
    ],
    ['an unknown output', affineBody(undefined, { outputs: ['nope'] }), /'nope'/],
  ])('answers 422 for %s', async (_name, body, detail) => {
    const api = await startApi();
    await expectProblem(api, await postJson(api, '/v1/models/affine/infer', body), 422, detail);
  });
});

describe('keep-alive', () => {
  it("announces Node's 5 s by default and KEEP_ALIVE_TIMEOUT_MS when set, on Express's routes and the submit routes", async () => {
    const byDefault = await startApi();
    const longer = await startApi({ KEEP_ALIVE_TIMEOUT_MS: '65000' });
    const hints = [];
    for (const api of [byDefault, longer]) {
      const health = await api.fetch('/healthz');
      const submit = await api.fetch('/v1/models/affine/infer', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(affineBody()),
      });
      expect([health.status, submit.status]).toEqual([200, 202]);
      hints.push([health.headers.get('keep-alive'), submit.headers.get('keep-alive')]);
    }
    expect(hints).toEqual([
      ['timeout=5', 'timeout=5'],
      ['timeout=65', 'timeout=65'],
    ]);
  });
});

describe('requests', () => {
  it('answers 404 for an unknown request id, well-formed or not', async () => {
    const api = await startApi();
    await expectProblem(api, await api.fetch(`/v1/requests/${newRequestId()}`), 404);
    await expectProblem(api, await api.fetch('/v1/requests/not-an-id'), 404);
    await expectProblem(api, await api.fetch(`/v1/requests/${newRequestId()}`, { method: 'DELETE' }), 404);
    await expectProblem(api, await api.fetch(`/v1/requests/${newRequestId()}/events`), 404);
  });

  it('answers 400 for a wait that is not a number of seconds', async () => {
    const api = await startApi();
    await expectProblem(api, await api.fetch(`/v1/requests/${newRequestId()}?wait=soon`), 400, /wait/);
  });

  it('cancels a queued request once, then answers 409', async () => {
    const api = await startApi();
    const accepted = (await (await postJson(api, '/v1/models/affine/infer', affineBody())).json()) as {
      id: string;
    };
    const cancelled = await api.fetch(`/v1/requests/${accepted.id}`, { method: 'DELETE' });
    expect(cancelled.status).toBe(200);
    expect(await cancelled.json()).toMatchObject({ id: accepted.id, status: 'cancelled' });
    await expectProblem(
      api,
      await api.fetch(`/v1/requests/${accepted.id}`, { method: 'DELETE' }),
      409,
      /cancelled/,
    );
    expect(await (await api.fetch(`/v1/requests/${accepted.id}`)).json()).toMatchObject({
      status: 'cancelled',
    });
  });

  it('refuses to cancel a running request with 409', async () => {
    const api = await startApi();
    const accepted = (await (await postJson(api, '/v1/models/affine/infer', affineBody())).json()) as {
      id: string;
    };
    await startAsWorker(api.store, [accepted.id], Date.now());
    await expectProblem(
      api,
      await api.fetch(`/v1/requests/${accepted.id}`, { method: 'DELETE' }),
      409,
      /running/,
    );
  });

  it('long-polls GET ?wait=N until the request finishes', async () => {
    const api = await startApi();
    const accepted = (await (
      await postJson(api, '/v1/models/affine/infer', affineBody([5, 6, 7, 8]))
    ).json()) as {
      id: string;
    };
    const pending = api.fetch(`/v1/requests/${accepted.id}?wait=60`);
    await completeAsWorker(api.store, accepted.id, 2, [11, 13, 15, 17]);
    const response = await pending;
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ id: accepted.id, status: 'succeeded' });
  });

  it('streams each status change as server-sent events and ends after the terminal one', async () => {
    const api = await startApi();
    const accepted = (await (
      await postJson(api, '/v1/models/affine/infer', affineBody([0, 1, 2, 3]))
    ).json()) as {
      id: string;
    };
    const response = await api.fetch(`/v1/requests/${accepted.id}/events`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = sseReader(response);
    expect(await events.next()).toEqual({
      event: 'status',
      data: JSON.stringify({ id: accepted.id, status: 'queued' }),
    });
    await startAsWorker(api.store, [accepted.id], Date.now());
    expect(await events.next()).toEqual({
      event: 'status',
      data: JSON.stringify({ id: accepted.id, status: 'running' }),
    });
    const claimRecord = await api.store.get(accepted.id);
    expect(claimRecord?.status).toBe('running');
    await api.store.complete([
      {
        id: accepted.id,
        model: 'affine',
        version: 2,
        createdAt: Date.parse(claimRecord?.createdAt ?? ''),
        status: 'failed',
        error: { code: 'inference-failed', message: 'boom' },
        timings: { queueMs: 1, batchWaitMs: 0, inferMs: 1 },
        batchSize: 1,
        now: Date.now(),
      },
    ]);
    const terminal = await events.next();
    expect(terminal?.event).toBe('status');
    expect(JSON.parse(terminal?.data ?? '{}')).toMatchObject({
      id: accepted.id,
      status: 'failed',
      error: { code: 'inference-failed', message: 'boom' },
    });
    expect(await events.next()).toBeUndefined();
  });

  it('sends one terminal event and ends when the request already finished', async () => {
    const api = await startApi();
    const accepted = (await (await postJson(api, '/v1/models/affine/infer', affineBody())).json()) as {
      id: string;
    };
    await api.fetch(`/v1/requests/${accepted.id}`, { method: 'DELETE' });
    const events = sseReader(await api.fetch(`/v1/requests/${accepted.id}/events`));
    const only = await events.next();
    expect(JSON.parse(only?.data ?? '{}')).toMatchObject({
      id: accepted.id,
      status: 'cancelled',
      cached: false,
    });
    expect(await events.next()).toBeUndefined();
  });
});

describe('API keys', () => {
  it('answers 401 without a valid key and hides other tenants’ requests behind 404', async () => {
    const api = await startApi({ API_KEYS: 'acme:key-a,globex:key-g' });
    await expectProblem(api, await postJson(api, '/v1/models/affine/infer', affineBody()), 401, /Bearer/);
    await expectProblem(
      api,
      await postJson(api, '/v1/models/affine/infer', affineBody(), { authorization: 'Bearer wrong' }),
      401,
    );
    await expectProblem(
      api,
      await api.fetch('/v1/models', { headers: { authorization: 'Basic a2V5LWE=' } }),
      401,
    );
    const unauthorized = await api.fetch('/v1/models');
    expect(unauthorized.headers.get('www-authenticate')).toBe('Bearer');

    const submitted = await postJson(api, '/v1/models/affine/infer', affineBody(), {
      authorization: 'Bearer key-a',
    });
    expect(submitted.status).toBe(202);
    const { id } = (await submitted.json()) as { id: string };
    const own = await api.fetch(`/v1/requests/${id}`, { headers: { authorization: 'Bearer key-a' } });
    expect(own.status).toBe(200);
    expect(await api.store.get(id)).toMatchObject({ tenant: 'acme' });
    const asOther = { headers: { authorization: 'Bearer key-g' } };
    await expectProblem(api, await api.fetch(`/v1/requests/${id}`, asOther), 404);
    await expectProblem(api, await api.fetch(`/v1/requests/${id}`, { ...asOther, method: 'DELETE' }), 404);
    await expectProblem(api, await api.fetch(`/v1/requests/${id}/events`, asOther), 404);
    // Health, readiness and metrics stay open.
    expect((await api.fetch('/metrics')).status).toBe(200);
  });
});

describe('models, health, readiness, metrics', () => {
  it('describes the models', async () => {
    const api = await startApi();
    const response = await api.fetch('/v1/models/affine');
    expect(response.status).toBe(200);
    const described = {
      name: 'affine',
      versions: [1, 2],
      defaultVersion: 2,
      version: 2,
      inputs: [{ name: 'x', dtype: 'float32', shape: [-1, 4] }],
      outputs: [{ name: 'y', dtype: 'float32', shape: [-1, 4] }],
      batching: { maxBatchSize: 8, maxBatchDelayMs: 3, preferredBatchSizes: [], latencyObjectiveMs: null },
      // No live worker runs it, so no provider is in use yet.
      executionProvider: null,
      configuredProviders: ['cpu'],
      cache: { enabled: true, ttlSeconds: 3600 },
      ready: false,
      versionStates: [1, 2].map((version) => ({
        version,
        state: 'unavailable',
        reason: 'no live worker serves this version',
        liveWorkers: 0,
        providers: [],
        // These tests run with WAIT_FOR_CAPACITY=true: requests wait in Redis for a worker.
        accepting: true,
      })),
    };
    expect(await response.json()).toEqual(described);
    expect(await (await api.fetch('/v1/models')).json()).toEqual({ models: [described] });
    const packed = await api.fetch('/v1/models', { headers: { accept: 'application/msgpack' } });
    expect(unpackStandard(new Uint8Array(await packed.arrayBuffer()))).toEqual({ models: [described] });
    await expectProblem(api, await api.fetch('/v1/models/nope'), 404);
  });

  it('is alive, and ready only once every model has a live worker', async () => {
    const api = await startApi();
    const health = await api.fetch('/healthz');
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });

    const notReady = await api.fetch('/readyz');
    expect(notReady.status).toBe(503);
    expect(notReady.headers.get('retry-after')).toBe('5');
    expect(await notReady.json()).toEqual({
      status: 'unavailable',
      ready: false,
      redis: 'ok',
      models: [{ name: 'affine', version: 2, state: 'unavailable', liveWorkers: 0 }],
      missing: ['model affine version 2 is unavailable (no live worker serves this version)'],
      unavailable: [],
    });

    await api.fleet.report({
      id: 'worker-1',
      host: 'h',
      pid: 1,
      heartbeatAt: Date.now(),
      versions: [
        { model: 'affine', version: 1, state: 'ready', provider: 'cpu', loadMs: 12, warmupMs: 3 },
        { model: 'affine', version: 2, state: 'ready', provider: 'cpu', loadMs: 11, warmupMs: 2 },
      ],
    });
    await api.catalog.refresh();
    const ready = await api.fetch('/readyz');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({
      status: 'ready',
      ready: true,
      redis: 'ok',
      models: [{ name: 'affine', version: 2, state: 'ready', liveWorkers: 1 }],
      missing: [],
      unavailable: [],
    });
    expect(await (await api.fetch('/v1/models/affine')).json()).toMatchObject({
      ready: true,
      executionProvider: 'cpu',
      versionStates: [
        {
          version: 1,
          state: 'ready',
          liveWorkers: 1,
          providers: ['cpu'],
          accepting: true,
          loadMs: 12,
          warmupMs: 3,
        },
        {
          version: 2,
          state: 'ready',
          liveWorkers: 1,
          providers: ['cpu'],
          accepting: true,
          loadMs: 11,
          warmupMs: 2,
        },
      ],
    });
  });

  it('exposes Prometheus metrics', async () => {
    const api = await startApi();
    await postJson(api, '/v1/models/affine/infer', affineBody());
    await postJson(api, '/v1/models/affine/infer', affineBody());
    await postJson(api, '/v1/models/affine/infer', affineBody(undefined, { cache: false }));
    const response = await api.fetch('/metrics');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await response.text();
    for (const name of [
      'inferq_requests_total',
      'inferq_request_phase_seconds',
      'inferq_batch_size',
      'inferq_queue_depth',
      'inferq_cache_hits_total',
      'inferq_cache_misses_total',
      'inferq_coalesced_total',
      'inferq_http_request_duration_seconds',
      'process_cpu_seconds_total',
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    const model = { model: 'affine' };
    expect(sampleValue(text, 'inferq_requests_total', { ...model, status: 'queued' })).toBe(2);
    expect(sampleValue(text, 'inferq_requests_total', { ...model, status: 'coalesced' })).toBe(1);
    expect(sampleValue(text, 'inferq_coalesced_total', model)).toBe(1);
    expect(sampleValue(text, 'inferq_cache_misses_total', model)).toBe(2);
    expect(sampleValue(text, 'inferq_cache_hits_total', model)).toBeUndefined();
    expect(sampleValue(text, 'inferq_queue_depth', model)).toBe(2);
    expect(
      sampleValue(text, 'inferq_http_request_duration_seconds_count', {
        method: 'POST',
        route: '/v1/models/:model/infer',
        status: '202',
      }),
    ).toBe(3);
  });
});

describe('when Redis is down', () => {
  let redis: TestRedis | undefined;

  afterEach(async () => {
    await redis?.stop();
  });

  it('answers 503 with Retry-After, reports not ready, and recovers', async () => {
    redis = await startTestRedis({ appendonly: false });
    const api = await startApi({}, redis.url);
    await redis.kill();
    const submit = await postJson(api, '/v1/models/affine/infer', affineBody());
    expect(submit.headers.get('retry-after')).toBe('1');
    await expectProblem(api, submit, 503, /Redis/);
    await expectProblem(api, await api.fetch(`/v1/requests/${newRequestId()}`), 503);
    const readiness = await api.fetch('/readyz');
    expect(readiness.status).toBe(503);
    expect(await readiness.json()).toMatchObject({ redis: 'unreachable', missing: ['Redis is unreachable'] });

    await redis.restart();
    let status = 503;
    for (let attempt = 0; attempt < 200 && status === 503; attempt++) {
      const retry = await postJson(api, '/v1/models/affine/infer', affineBody());
      status = retry.status;
      if (status === 503) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(status).toBe(202);
  });
});
