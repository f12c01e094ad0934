/**
 * Waiters (Prefer: wait, ?wait, event streams) over real HTTP and a real redis-server: they survive a
 * burst of large results and a subscriber that lost its connection, they end when the record they
 * wait on is gone, followers' timings are consistent, and a large JSON answer is written in pieces.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cacheKey,
  encodePayload,
  encodeRecord,
  encodeTensorMap,
  newRequestId,
  type TensorMap,
  unpackStandard,
} from '@inferq/protocol';
import { loadModelRepository, type ModelRepository } from '@inferq/repository';
import { createRedisConnection, RequestStore, type SubmitParams } from '@inferq/store';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { writeAffineModel } from '../helpers/onnx-models.ts';
import { startAsWorker } from '../helpers/queue.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis-server.ts';
import { events } from '../helpers/sse.ts';
import { postJson, startTestApi, type TestApi } from '../helpers/test-api.ts';

let modelDir: string;
let repository: ModelRepository;
let redis: TestRedis;
const open: TestApi[] = [];

beforeAll(async () => {
  modelDir = mkdtempSync(join(tmpdir(), 'inferq-waiters-'));
  writeAffineModel(join(modelDir, 'affine', '1', 'model.onnx'), { scale: 2, bias: 1 });
  repository = await loadModelRepository(modelDir);
  // A Redis of this file's own: the tests kill its subscribers and lower its pub/sub buffer limit.
  redis = await startTestRedis({ appendonly: false });
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((api) => api.close()));
});

afterAll(async () => {
  await redis.stop();
  rmSync(modelDir, { recursive: true, force: true });
});

async function startApi(recheckIntervalMs?: number): Promise<TestApi> {
  const api = await startTestApi({
    redisUrl: redis.url,
    repository,
    modelRepository: modelDir,
    ...(recheckIntervalMs === undefined ? {} : { recheckIntervalMs }),
  });
  open.push(api);
  return api;
}

const body = (first: number) => ({
  inputs: { x: { dtype: 'float32', shape: [1, 4], data: [first, 2, 3, 4] } },
});

/** The id of the request whose record holds `value` in the metadata-free payload: found by polling. */
async function queuedIds(api: TestApi, count: number): Promise<string[]> {
  for (;;) {
    const ids = (await api.store.redis.keys(`${api.prefix}:req:*`)).map((key) => key.split(':req:')[1]!);
    if (ids.length >= count) return ids;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Ends `ids` as a worker would, each with `y`. */
async function complete(api: TestApi, ids: string[], y: TensorMap['y']): Promise<void> {
  const started = await startAsWorker(api.store, ids);
  const now = Date.now();
  await api.store.complete(
    started.map((s) => {
      if (s.state !== 'run') throw new Error(`${s.id} did not start`);
      return {
        id: s.id,
        model: 'affine',
        version: 1,
        createdAt: s.createdAt,
        status: 'succeeded' as const,
        outputs: encodeTensorMap({ y: y! }),
        timings: { queueMs: 1, batchWaitMs: 0, inferMs: 1 },
        batchSize: ids.length,
        startedAt: now,
        now,
      };
    }),
  );
}

/** Ids of the connections subscribed to something: a subscriber Redis dropped comes back with a new one. */
async function subscriberIds(api: TestApi): Promise<string[]> {
  const list = String(await api.store.redis.call('CLIENT', 'LIST', 'TYPE', 'pubsub'));
  return [...list.matchAll(/^id=(\d+) /gm)].map((match) => match[1]!).sort();
}

describe('a burst of large results (issue 11, item 2)', () => {
  it('answers every Prefer: wait from Redis without the subscriber being dropped for its buffer', async () => {
    const api = await startApi();
    // 1 MB hard limit: six 300 KB results in completion messages would pass it at once.
    await api.store.redis.config('SET', 'client-output-buffer-limit', 'pubsub 1mb 512kb 60');
    const before = await subscriberIds(api);
    expect(before).toHaveLength(1);
    const answers = Array.from({ length: 6 }, (_, i) =>
      api.fetch('/v1/models/affine/infer', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/msgpack', prefer: 'wait=10' },
        body: JSON.stringify(body(100 + i)),
      }),
    );
    const ids = await queuedIds(api, 6);
    const data = new Float32Array(75_000).map((_, i) => i);
    await complete(api, ids, { dtype: 'float32', shape: [1, 75_000], data });
    for (const response of await Promise.all(answers)) {
      expect(response.status).toBe(200);
      const record = unpackStandard(new Uint8Array(await response.arrayBuffer())) as {
        status: string;
        outputs: { y: { shape: number[]; data: Uint8Array } };
      };
      expect(record.status).toBe('succeeded');
      expect(record.outputs.y.shape).toEqual([1, 75_000]);
      expect(Buffer.from(record.outputs.y.data).equals(Buffer.from(data.buffer))).toBe(true);
    }
    expect(await subscriberIds(api)).toEqual(before);
  });

  it('wakes every waiter to read its record once the subscriber is back from a lost connection', {
    timeout: 20_000,
  }, async () => {
    // Rechecks far apart: only the reconnect can end these waits within the test's time.
    const api = await startApi(600_000);
    const submitted = postJson(api, '/v1/models/affine/infer', body(1), { prefer: 'wait=60' });
    const [waitedId] = await queuedIds(api, 1);
    const followed = await postJson(api, '/v1/models/affine/infer', body(2));
    const followedId = ((await followed.json()) as { id: string }).id;
    const stream = await api.fetch(`/v1/requests/${followedId}/events`);
    const next = events(stream);
    expect(await next()).toEqual({
      event: 'status',
      data: JSON.stringify({ id: followedId, status: 'queued' }),
    });
    const polled = api.fetch(`/v1/requests/${followedId}?wait=60`);
    // Both end while nobody is subscribed to hear it: as if the messages were lost.
    const lost = createRedisConnection(redis.url, 'worker');
    try {
      for (const id of [waitedId!, followedId]) {
        await lost.hset(`${api.prefix}:req:${id}`, 'status', 'cancelled', 'finishedAt', String(Date.now()));
      }
      await lost.client('KILL', 'TYPE', 'pubsub');
    } finally {
      lost.disconnect();
    }
    expect(((await (await submitted).json()) as { status: string }).status).toBe('cancelled');
    expect(((await (await polled).json()) as { status: string }).status).toBe('cancelled');
    const terminal = await next();
    expect(terminal?.event).toBe('status');
    expect(JSON.parse(terminal?.data ?? '{}')).toMatchObject({ id: followedId, status: 'cancelled' });
  });
});

describe('a record that is gone (issue 11, item 3)', () => {
  it('ends ?wait, Prefer: wait and the event stream with 404 at the next recheck', async () => {
    const api = await startApi(100);
    const submitted = postJson(api, '/v1/models/affine/infer', body(1), { prefer: 'wait=60' });
    const [waitedId] = await queuedIds(api, 1);
    const followed = await postJson(api, '/v1/models/affine/infer', body(2));
    const id = ((await followed.json()) as { id: string }).id;
    const stream = await api.fetch(`/v1/requests/${id}/events`);
    const next = events(stream);
    expect((await next())?.event).toBe('status');
    const polled = api.fetch(`/v1/requests/${id}?wait=60`);
    // Redis restarted without AOF, or flushed: the records vanish.
    await api.store.redis.del(`${api.prefix}:req:${id}`, `${api.prefix}:req:${waitedId}`);
    const notFound = (requestId: string) => ({
      type: 'https://inferq.dev/problems/not-found',
      title: 'Not found',
      status: 404,
      detail: `no request with id '${requestId}'`,
    });
    const answer = await submitted;
    expect(answer.status).toBe(404);
    expect(await answer.json()).toEqual(notFound(waitedId!));
    const poll = await polled;
    expect(poll.status).toBe(404);
    expect(await poll.json()).toEqual(notFound(id));
    expect(await next()).toEqual({ event: 'error', data: JSON.stringify(notFound(id)) });
    expect(await next()).toBeUndefined();
  });
});

describe('a large JSON answer (issue 11, item 15)', () => {
  it('is written in pieces (chunked) and is exactly the record encodeRecord writes', async () => {
    const api = await startApi();
    const response = await postJson(api, '/v1/models/affine/infer', body(7));
    const id = ((await response.json()) as { id: string }).id;
    const data = new Float32Array(200_000).map((_, i) => i / 8);
    await complete(api, [id], { dtype: 'float32', shape: [1, 200_000], data });
    const record = await api.store.get(id);
    const answer = await api.fetch(`/v1/requests/${id}`);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
    expect(answer.headers.get('content-length')).toBeNull();
    expect(answer.headers.get('transfer-encoding')).toBe('chunked');
    expect(await answer.text()).toBe(new TextDecoder().decode(encodeRecord(record!, 'json')));
  });
});

describe("a follower's timings (issue 11, item 9)", () => {
  const inputs: TensorMap = { x: { dtype: 'float32', shape: [1, 4], data: new Float32Array([9, 9, 9, 9]) } };
  const params = (prefix: string, now: number): SubmitParams => ({
    id: newRequestId(),
    model: 'm',
    version: 1,
    tenant: 'public',
    cacheKey: cacheKey({ model: 'm', version: 1, inputs: { ...inputs }, tenant: prefix }),
    useCache: true,
    cacheTtlSeconds: 60,
    payload: encodePayload({ inputs }),
    now,
  });

  it('are its leader’s phases cut to its own life: none exceeds its total', async () => {
    const connection = createRedisConnection(inject('redisUrl'), 'worker');
    const prefix = `{t-${newRequestId().slice(0, 8)}}`;
    const store = new RequestStore({ redis: connection, prefix, resultTtlSeconds: 60 });
    try {
      const t = Date.now() - 10_000;
      const leader = params(prefix, t);
      const queuedFollower = { ...params(prefix, t + 1000), cacheKey: leader.cacheKey };
      await store.submit(leader);
      expect((await store.submit(queuedFollower)).kind).toBe('coalesced');
      await startAsWorker(store, [leader.id], t + 1500);
      const runningFollower = { ...params(prefix, t + 1800), cacheKey: leader.cacheKey };
      expect((await store.submit(runningFollower)).kind).toBe('coalesced');
      await store.complete([
        {
          id: leader.id,
          model: 'm',
          version: 1,
          createdAt: t,
          status: 'succeeded',
          outputs: encodeTensorMap({ y: inputs.x! }),
          timings: { queueMs: 1500, batchWaitMs: 100, inferMs: 400 },
          batchSize: 1,
          startedAt: t + 1500,
          now: t + 2000,
        },
      ]);
      const timings = async (id: string) => {
        const r = await store.get(id);
        return { timings: r?.timings, startedAt: r?.startedAt };
      };
      const at = (ms: number) => new Date(t + ms).toISOString();
      expect(await timings(leader.id)).toEqual({
        timings: { queueMs: 1500, batchWaitMs: 100, inferMs: 400, totalMs: 2000 },
        startedAt: at(1500),
      });
      // Queued behind its leader from t+1000: 500 ms of queue, the run's batch wait and inference.
      expect(await timings(queuedFollower.id)).toEqual({
        timings: { queueMs: 500, batchWaitMs: 100, inferMs: 400, totalMs: 1000 },
        startedAt: at(1500),
      });
      // Joined the running leader at t+1800: no queue, the last 100 ms of the inference.
      expect(await timings(runningFollower.id)).toEqual({
        timings: { queueMs: 0, batchWaitMs: 0, inferMs: 100, totalMs: 200 },
        startedAt: at(1800),
      });
    } finally {
      await connection.quit();
    }
  });
});
