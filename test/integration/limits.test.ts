/**
 * Admission control and deadlines over real HTTP and a real redis-server: the queue-depth limit, the
 * per-tenant token bucket, Idempotency-Key, early refusal of a request whose deadline the queue ahead
 * of it rules out, and `timeoutMs` enforced whether or not a worker comes (with a real ModelWorker
 * and onnxruntime-node where a request must be shown never to run).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '@inferq/config';
import { createLogger, createMetrics, type Metrics } from '@inferq/observability';
import { type BatchCostProfile, type CompletionMessage, decodeCompletionMessage } from '@inferq/protocol';
import { loadModelRepository, type ModelRepository } from '@inferq/repository';
import { ModelSession } from '@inferq/runtime';
import {
  CompletionWatcher,
  createRedisConnection,
  FleetRegistry,
  RequestStore,
  startDeadlineSweeper,
} from '@inferq/store';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { createServer } from '../../apps/api/src/server.ts';
import { writeAffineModel } from '../helpers/onnx-models.ts';
import { checkAnswersOf } from '../helpers/openapi-answers.ts';
import { startModelWorker, type TestModelWorker } from '../helpers/queue.ts';
import { queueOf, testQueue, waitsInQueue } from '../helpers/queue-backend.ts';
import { testCatalog } from '../helpers/test-api.ts';

const EXPIRED_ERROR = { code: 'expired', message: 'the request passed its timeoutMs before it could run' };
const PROBLEM_BASE = 'https://inferq.dev/problems/';

let dir: string;
let repository: ModelRepository;
let session: ModelSession;

/** One API (its own key prefix) and, on demand, a worker serving affine v1 under the same prefix. */
interface Deployment {
  prefix: string;
  store: RequestStore;
  redis: Redis;
  workerMetrics: Metrics;
  /** Writes a live worker's report that serves affine and affine-slo v1 at `batchCosts`, and has the API read it. */
  reportWorker(batchCosts: BatchCostProfile): Promise<void>;
  post(body: unknown, headers?: Record<string, string>, path?: string): Promise<Response>;
  get(path: string, headers?: Record<string, string>): Promise<Response>;
  fetch(path: string, init: RequestInit): Promise<Response>;
  startWorker(): void;
  close(): Promise<void>;
}

const open: Deployment[] = [];

async function deploy(env: Record<string, string> = {}): Promise<Deployment> {
  const url = inject('redisUrl');
  const prefix = `{lim-${randomBytes(4).toString('hex')}}`;
  const config = loadConfig({ LOG_LEVEL: 'silent', QUEUE_PREFIX: prefix, MODEL_REPOSITORY: dir, ...env });
  const redis = createRedisConnection(url, 'worker');
  const subscriber = createRedisConnection(url, 'subscriber');
  const workerRedis = createRedisConnection(url, 'worker');
  const store = new RequestStore({ redis, prefix, resultTtlSeconds: 60 });
  const workerStore = new RequestStore({ redis: workerRedis, prefix, resultTtlSeconds: 60 });
  const watcher = new CompletionWatcher({ subscriber, prefix });
  const workerMetrics = createMetrics('worker');
  const catalog = testCatalog(repository, redis, prefix);
  const api = createServer({
    config,
    store,
    queue: testQueue(store),
    watcher,
    catalog,
    metrics: createMetrics('api'),
    logger: createLogger(config, 'api'),
  });
  const server: Server = await new Promise((resolve) => {
    const s = api.listen(0, '127.0.0.1', () => resolve(s));
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  checkAnswersOf(base);
  let worker: TestModelWorker | undefined;
  const deployment: Deployment = {
    prefix,
    store,
    redis,
    workerMetrics,
    reportWorker: async (batchCosts) => {
      const served = (model: string) => ({ model, version: 1, state: 'ready' as const, batchCosts });
      await new FleetRegistry({ redis, prefix }).report({
        id: 'measured-worker',
        host: 'test',
        pid: process.pid,
        heartbeatAt: Date.now(),
        versions: [served('affine'), served('affine-slo')],
      });
      await catalog.refresh();
    },
    post: (body, headers = {}, path = '/v1/models/affine/infer') =>
      fetch(base + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      }),
    get: (path, headers = {}) => fetch(base + path, { headers }),
    fetch: (path, init) => fetch(base + path, init),
    startWorker: () => {
      const version = repository.get('affine');
      if (!version) throw new Error('affine model missing');
      worker = startModelWorker({
        redisUrl: url,
        version,
        session,
        store: workerStore,
        jobAttempts: 1,
        metrics: workerMetrics,
        logger: createLogger(config, 'worker'),
      });
    },
    close: async () => {
      await worker?.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await watcher.close(); // quits the subscriber connection
      for (const connection of [redis, workerRedis]) await connection.quit();
    },
  };
  open.push(deployment);
  return deployment;
}

function body(values: number[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { inputs: { x: { dtype: 'float32', shape: [1, 4], data: values } }, ...extra };
}

async function accepted(response: Response): Promise<string> {
  expect(response.status).toBe(202);
  return ((await response.json()) as { id: string }).id;
}

async function problemOf(response: Response): Promise<Record<string, unknown>> {
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  return (await response.json()) as Record<string, unknown>;
}

/** An `infer:bulk` answer: the ids in order (null where refused) and the refusals. */
async function bulkAnswerOf(response: Response): Promise<{
  ids: (string | null)[];
  rejected: { index: number; status: number; type: string; retryAfterSeconds: number }[];
}> {
  return (await response.json()) as Awaited<ReturnType<typeof bulkAnswerOf>>;
}

/** A refused answer: its status, Retry-After and problem details. */
async function refusalOf(
  response: Response,
): Promise<{ status: number; retryAfter: string | null; problem: Record<string, unknown> }> {
  return {
    status: response.status,
    retryAfter: response.headers.get('retry-after'),
    problem: await problemOf(response),
  };
}

async function recordOf(d: Deployment, id: string, wait = 0): Promise<Record<string, unknown>> {
  const response = await d.get(`/v1/requests/${id}${wait > 0 ? `?wait=${wait}` : ''}`);
  expect(response.status).toBe(200);
  return (await response.json()) as Record<string, unknown>;
}

/** Long-polls until the request leaves queued/running. */
async function finalRecord(d: Deployment, id: string): Promise<Record<string, unknown>> {
  for (;;) {
    const record = await recordOf(d, id, 10);
    if (record.status !== 'queued' && record.status !== 'running') return record;
  }
}

/** Until the queue of affine v1 holds no request that a worker could still take or is running. */
async function drained(d: Deployment): Promise<void> {
  for (;;) {
    const counts = await queueOf(d.store).counts('affine', 1);
    if (Object.values(counts).every((n) => n === 0)) return;
    await sleep(20);
  }
}

async function batchRuns(metrics: Metrics): Promise<{ count: number; sum: number }> {
  const values = (await metrics.batchSize.get()).values;
  const count = values.find((v) => v.metricName === 'inferq_batch_size_count')?.value ?? 0;
  const sum = values.find((v) => v.metricName === 'inferq_batch_size_sum')?.value ?? 0;
  return { count, sum };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Collects the MessagePack completion messages published on `channels`. */
async function listen(
  channels: string[],
): Promise<{ messages: Map<string, CompletionMessage>; close(): Promise<void> }> {
  const subscriber = createRedisConnection(inject('redisUrl'), 'subscriber');
  const messages = new Map<string, CompletionMessage>();
  subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => {
    messages.set(channel.toString(), decodeCompletionMessage(message));
  });
  await subscriber.subscribe(...channels);
  return {
    messages,
    close: async () => {
      await subscriber.quit();
    },
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'inferq-limits-'));
  mkdirSync(join(dir, 'affine', '1'), { recursive: true });
  writeAffineModel(join(dir, 'affine', '1', 'model.onnx'), { scale: 2, bias: 1 });
  writeFileSync(join(dir, 'affine', 'config.json'), JSON.stringify({ maxBatchSize: 8, maxBatchDelayMs: 20 }));
  mkdirSync(join(dir, 'affine-slo', '1'), { recursive: true });
  writeAffineModel(join(dir, 'affine-slo', '1', 'model.onnx'), { scale: 2, bias: 1 });
  writeFileSync(
    join(dir, 'affine-slo', 'config.json'),
    JSON.stringify({ maxBatchSize: 8, maxBatchDelayMs: 20, latencyObjectiveMs: 10 }),
  );
  repository = await loadModelRepository(dir);
  session = await ModelSession.open(repository.get('affine')!);
});

afterEach(async () => {
  for (const d of open.splice(0)) await d.close();
});

afterAll(async () => {
  await session.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('queue depth (MAX_QUEUE_DEPTH)', () => {
  it('answers 429 queue-full with Retry-After once the model version has that many requests waiting', async () => {
    const d = await deploy({ MAX_QUEUE_DEPTH: '2' });
    const first = await accepted(await d.post(body([1, 2, 3, 4])));
    await accepted(await d.post(body([5, 6, 7, 8])));

    expect(await refusalOf(await d.post(body([9, 10, 11, 12])))).toEqual({
      status: 429,
      retryAfter: '1',
      problem: {
        type: `${PROBLEM_BASE}queue-full`,
        title: 'Queue full',
        status: 429,
        detail:
          "model 'affine' version 1 has 2 requests waiting, its limit (MAX_QUEUE_DEPTH=2); retry in 1 s",
      },
    });
    expect(await d.redis.zcard(`${d.prefix}:queued:affine.v1`)).toBe(2);
    expect((await queueOf(d.store).counts('affine', 1)).waiting).toBe(2);

    // Needing no run of its own, an identical request still attaches to the first.
    const follower = await accepted(await d.post(body([1, 2, 3, 4])));
    expect(await recordOf(d, follower)).toMatchObject({ status: 'queued', coalesced: true });

    // A cancelled request frees its place at once.
    expect((await d.fetch(`/v1/requests/${first}`, { method: 'DELETE' })).status).toBe(200);
    expect(await d.redis.zcard(`${d.prefix}:queued:affine.v1`)).toBe(1);
    await accepted(await d.post(body([9, 10, 11, 12])));
    expect((await d.post(body([13, 14, 15, 16]))).status).toBe(429);
  });

  it('frees the places of claimed and expired requests, so a drained queue accepts again', async () => {
    const d = await deploy({ MAX_QUEUE_DEPTH: '1' });
    const expiring = await accepted(await d.post(body([1, 1, 1, 1], { timeoutMs: 50 })));
    expect((await d.post(body([2, 2, 2, 2]))).status).toBe(429);
    await sleep(100);
    expect(await recordOf(d, expiring)).toMatchObject({ status: 'expired' });
    const runs = await accepted(await d.post(body([2, 2, 2, 2])));
    d.startWorker();
    expect(await finalRecord(d, runs)).toMatchObject({ status: 'succeeded' });
    expect(await d.redis.zcard(`${d.prefix}:queued:affine.v1`)).toBe(0);
    expect(await d.redis.zcard(`${d.prefix}:deadlines`)).toBe(0);
    await accepted(await d.post(body([3, 3, 3, 3])));
  });

  it('refuses, within one infer:bulk body, the requests past the limit, and only them', async () => {
    const d = await deploy({ MAX_QUEUE_DEPTH: '2' });
    const bulk = (values: number[][]): Promise<Response> =>
      d.post({ requests: values.map((v) => body(v)) }, {}, '/v1/models/affine/infer:bulk');
    // The third request is a twin of the first: it needs no run of its own, so it passes.
    const answer = await bulk([
      [1, 1, 1, 1],
      [2, 2, 2, 2],
      [1, 1, 1, 1],
      [3, 3, 3, 3],
    ]);
    expect(answer.status).toBe(202);
    const { ids, rejected } = await bulkAnswerOf(answer);
    expect(ids.map((id) => id !== null)).toEqual([true, true, true, false]);
    expect(rejected).toEqual([
      expect.objectContaining({
        index: 3,
        status: 429,
        type: `${PROBLEM_BASE}queue-full`,
        retryAfterSeconds: 1,
      }),
    ]);
    expect(await recordOf(d, ids[2]!)).toMatchObject({ status: 'queued', coalesced: true });
    expect((await queueOf(d.store).counts('affine', 1)).waiting).toBe(2);
    // Every request of a body refused: the answer is the refusal itself.
    const refused = await bulk([[4, 4, 4, 4]]);
    expect(refused.status).toBe(429);
    expect(await problemOf(refused)).toMatchObject({ type: `${PROBLEM_BASE}queue-full` });
  });

  it('drops an entry whose request ended behind the scripts back instead of counting it for ever', async () => {
    const d = await deploy({ MAX_QUEUE_DEPTH: '1' });
    // A queued-set entry with no queued record behind it (as a request ended by hand would leave).
    await d.redis.zadd(`${d.prefix}:queued:affine.v1`, 1, 'gone-request');
    const id = await accepted(await d.post(body([1, 2, 3, 4])));
    expect(await d.redis.zrange(`${d.prefix}:queued:affine.v1`, 0, -1)).toEqual([id]);
    expect((await d.post(body([4, 3, 2, 1]))).status).toBe(429);
  });
});

describe('per-tenant rate limit (RATE_LIMIT_PER_SECOND, RATE_LIMIT_BURST)', () => {
  it('answers 429 rate-limited with Retry-After once the burst is spent, per tenant, and accepts again after it', async () => {
    const d = await deploy({
      API_KEYS: 'acme:key-a,globex:key-g',
      RATE_LIMIT_PER_SECOND: '0.5',
      RATE_LIMIT_BURST: '2',
    });
    const acme = { authorization: 'Bearer key-a' };
    await accepted(await d.post(body([1, 2, 3, 4]), acme));
    await accepted(await d.post(body([5, 6, 7, 8]), acme));

    const refused = await d.post(body([9, 10, 11, 12]), acme);
    expect(refused.status).toBe(429);
    const retryAfter = refused.headers.get('retry-after');
    expect(retryAfter).toBe('2');
    expect(await problemOf(refused)).toEqual({
      type: `${PROBLEM_BASE}rate-limited`,
      title: 'Rate limit exceeded',
      status: 429,
      detail: "tenant 'acme' is over its rate limit of 0.5 requests/s (burst 2); retry in 2 s",
    });
    // Another tenant has a bucket of its own.
    await accepted(await d.post(body([9, 10, 11, 12]), { authorization: 'Bearer key-g' }));

    await sleep(Number(retryAfter) * 1000);
    await accepted(await d.post(body([9, 10, 11, 12]), acme));
    expect((await d.post(body([13, 14, 15, 16]), acme)).status).toBe(429);
  });

  it('does not charge a replayed Idempotency-Key', async () => {
    const d = await deploy({ RATE_LIMIT_PER_SECOND: '0.1', RATE_LIMIT_BURST: '1' });
    const headers = { 'idempotency-key': 'order-1' };
    const id = await accepted(await d.post(body([1, 2, 3, 4]), headers));
    const replay = await d.post(body([1, 2, 3, 4]), headers);
    expect(replay.status).toBe(202);
    expect(await replay.json()).toEqual({ id, status: 'queued', model: 'affine', version: 1 });
    expect((await d.post(body([1, 2, 3, 4]))).status).toBe(429);
  });
});

describe('Idempotency-Key', () => {
  it('answers the same id for the same key and body, and enqueues it once', async () => {
    const d = await deploy();
    const headers = { 'idempotency-key': 'a7c5f1e0-retry' };
    const first = await d.post(body([1, 2, 3, 4]), headers);
    expect(first.status).toBe(202);
    const firstBody = (await first.json()) as { id: string };
    const again = await d.post(body([1, 2, 3, 4]), headers);
    expect(again.status).toBe(202);
    expect(again.headers.get('location')).toBe(`/v1/requests/${firstBody.id}`);
    expect(await again.json()).toEqual({ id: firstBody.id, status: 'queued', model: 'affine', version: 1 });
    // The quoted form of the IETF draft names the same key.
    expect(await d.post(body([1, 2, 3, 4]), { 'idempotency-key': '"a7c5f1e0-retry"' }).then(accepted)).toBe(
      firstBody.id,
    );
    expect((await queueOf(d.store).counts('affine', 1)).waiting).toBe(1);
    expect(await d.redis.zcard(`${d.prefix}:queued:affine.v1`)).toBe(1);
  });

  it('makes concurrent identical submissions one request', async () => {
    const d = await deploy();
    const headers = { 'idempotency-key': 'burst-1' };
    const ids = await Promise.all(
      Array.from({ length: 8 }, () => d.post(body([1, 2, 3, 4], { cache: false }), headers).then(accepted)),
    );
    expect(new Set(ids).size).toBe(1);
    expect((await queueOf(d.store).counts('affine', 1)).waiting).toBe(1);
    expect(await d.redis.keys(`${d.prefix}:req:*`)).toEqual([`${d.prefix}:req:${ids[0]}`]);
  });

  it('answers the finished record, as the first answer would have been then', async () => {
    const d = await deploy();
    const headers = { 'idempotency-key': 'finished-1' };
    const id = await accepted(await d.post(body([1, 2, 3, 4]), headers));
    d.startWorker();
    const done = await finalRecord(d, id);
    expect(done.status).toBe('succeeded');
    const replay = await d.post(body([1, 2, 3, 4]), headers);
    expect(replay.status).toBe(200);
    expect(await replay.json()).toEqual(done);
  });

  it('answers 422 for the same key with a different body, and for the same body on another model version path', async () => {
    const d = await deploy();
    const headers = { 'idempotency-key': 'k-1' };
    await accepted(await d.post(body([1, 2, 3, 4]), headers));
    const other = await d.post(body([1, 2, 3, 5]), headers);
    expect(other.status).toBe(422);
    expect(await problemOf(other)).toEqual({
      type: `${PROBLEM_BASE}idempotency-key-reused`,
      title: 'Idempotency key reused for a different request',
      status: 422,
      detail:
        "Idempotency-Key 'k-1' was first used with a different request; send a new key for a new request",
    });
    const pinned = await d.post(body([1, 2, 3, 4]), headers, '/v1/models/affine/versions/1/infer');
    expect(pinned.status).toBe(422);
  });

  it('scopes keys to the tenant', async () => {
    const d = await deploy({ API_KEYS: 'acme:key-a,globex:key-g' });
    const a = await accepted(
      await d.post(body([1, 2, 3, 4]), { authorization: 'Bearer key-a', 'idempotency-key': 'shared' }),
    );
    const g = await accepted(
      await d.post(body([1, 2, 3, 4]), { authorization: 'Bearer key-g', 'idempotency-key': 'shared' }),
    );
    expect(g).not.toBe(a);
    expect(await d.redis.exists(`${d.prefix}:idem:acme:shared`, `${d.prefix}:idem:globex:shared`)).toBe(2);
  });

  it('remembers nothing for a refused request, and keeps the key for IDEMPOTENCY_TTL_SECONDS', async () => {
    const d = await deploy({ MAX_QUEUE_DEPTH: '1', IDEMPOTENCY_TTL_SECONDS: '120' });
    const waiting = await accepted(await d.post(body([1, 1, 1, 1])));
    const headers = { 'idempotency-key': 'after-full' };
    expect((await d.post(body([2, 2, 2, 2]), headers)).status).toBe(429);
    expect(await d.redis.exists(`${d.prefix}:idem:public:after-full`)).toBe(0);

    expect((await d.fetch(`/v1/requests/${waiting}`, { method: 'DELETE' })).status).toBe(200);
    // Another body under the key a refused request used is a new request, not a 422.
    await accepted(await d.post(body([3, 3, 3, 3]), headers));
    const remaining = await d.redis.ttl(`${d.prefix}:idem:public:after-full`);
    expect(remaining).toBeGreaterThan(0);
    expect(remaining).toBeLessThanOrEqual(120);
  });

  describe('on infer:bulk', () => {
    const bulk = '/v1/models/affine/infer:bulk';
    const requests = (...rows: number[][]) => ({
      requests: rows.map((values) => body(values, { cache: false })),
    });
    const idsOf = async (response: Response) => {
      expect(response.status).toBe(202);
      return ((await response.json()) as { ids: (string | null)[] }).ids;
    };

    it('answers the same ids for the same key and body, and enqueues them once', async () => {
      const d = await deploy();
      const headers = { 'idempotency-key': 'bulk-retry' };
      const first = await idsOf(
        await d.post(requests([1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]), headers, bulk),
      );
      expect(first).toHaveLength(3);
      const again = await idsOf(
        await d.post(requests([1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]), headers, bulk),
      );
      expect(again).toEqual(first);
      expect(await d.redis.zcard(`${d.prefix}:queued:affine.v1`)).toBe(3);
      expect((await d.redis.keys(`${d.prefix}:req:*`)).length).toBe(3);
      // Concurrent retries: still the same three requests.
      const concurrent = await Promise.all(
        Array.from({ length: 4 }, () =>
          d.post(requests([1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]), headers, bulk).then(idsOf),
        ),
      );
      for (const ids of concurrent) expect(ids).toEqual(first);
      expect((await d.redis.keys(`${d.prefix}:req:*`)).length).toBe(3);
    });

    it('answers 422 for the same key with another body (fewer, more or other requests) or a single submit, writing nothing', async () => {
      const d = await deploy();
      const headers = { 'idempotency-key': 'bulk-k' };
      await idsOf(await d.post(requests([1, 1, 1, 1], [2, 2, 2, 2]), headers, bulk));
      const before = (await d.redis.keys(`${d.prefix}:*`)).sort();
      for (const other of [
        requests([1, 1, 1, 1]),
        requests([1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]),
        requests([1, 1, 1, 1], [2, 2, 2, 5]),
      ]) {
        const response = await d.post(other, headers, bulk);
        expect(response.status).toBe(422);
        expect(await problemOf(response)).toMatchObject({
          type: `${PROBLEM_BASE}idempotency-key-reused`,
          detail:
            "Idempotency-Key 'bulk-k' was first used with a different request; send a new key for a new request",
        });
      }
      // The bytes of the first request alone, sent to the single route, are another request too.
      expect((await d.post(body([1, 1, 1, 1], { cache: false }), headers)).status).toBe(422);
      expect((await d.redis.keys(`${d.prefix}:*`)).sort()).toEqual(before);
      // And a key first used by a single submit refuses a bulk body.
      await accepted(await d.post(body([4, 4, 4, 4]), { 'idempotency-key': 'single-k' }));
      expect((await d.post(requests([4, 4, 4, 4]), { 'idempotency-key': 'single-k' }, bulk)).status).toBe(
        422,
      );
      expect(await d.redis.zcard(`${d.prefix}:queued:affine.v1`)).toBe(3);
    });

    it('gives requests refused the first time (queue full) another chance on the retry, keeping the others', async () => {
      const d = await deploy({ MAX_QUEUE_DEPTH: '2' });
      const headers = { 'idempotency-key': 'bulk-full' };
      const body3 = requests([1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]);
      const first = await idsOf(await d.post(body3, headers, bulk));
      expect(first[2]).toBeNull();
      expect((await d.fetch(`/v1/requests/${first[0]}`, { method: 'DELETE' })).status).toBe(200);
      const again = await idsOf(await d.post(body3, headers, bulk));
      expect(again.slice(0, 2)).toEqual(first.slice(0, 2));
      expect(again[2]).toEqual(expect.any(String));
      expect(await idsOf(await d.post(body3, headers, bulk))).toEqual(again);
    });

    it('answers 400 for a malformed key', async () => {
      const d = await deploy();
      const response = await d.post(requests([1, 1, 1, 1]), { 'idempotency-key': 'has space' }, bulk);
      expect(response.status).toBe(400);
    });
  });

  it('answers 400 for a key that is empty, too long or not visible ASCII', async () => {
    const d = await deploy();
    for (const key of ['', 'x'.repeat(256), 'has space', 'caf\u00e9']) {
      const response = await d.post(body([1, 2, 3, 4]), { 'idempotency-key': key });
      expect(response.status).toBe(400);
      expect((await problemOf(response)).detail).toBe(
        'Idempotency-Key must be 1 to 255 visible ASCII characters without spaces',
      );
    }
  });
});

describe('early refusal: a deadline the queue ahead rules out', () => {
  /** Batches of 8 rows in 9 ms plus 1 ms of overhead: one worker clears 8 requests every 10 ms. */
  const measured: BatchCostProfile = {
    batchSizes: [
      { batchSize: 1, ms: 2 },
      { batchSize: 8, ms: 9 },
    ],
    overheadMs: 1,
    kneeBatchSize: 8,
    bestBatchSize: 8,
  };
  const queued = (d: Deployment, model = 'affine'): Promise<number> =>
    d.redis.zcard(`${d.prefix}:queued:${model}.v1`);

  it('answers 503 deadline-unmeetable with Retry-After when more wait than the measured costs can serve in time', async () => {
    const d = await deploy();
    // Before any worker reports costs there is nothing to go by: nothing is refused for its deadline.
    for (let i = 0; i < 8; i++) await accepted(await d.post(body([i, 0, 0, 0], { timeoutMs: 60_000 })));
    const early = await accepted(await d.post(body([9, 0, 0, 0], { timeoutMs: 5 })));
    await sleep(50);
    expect(await recordOf(d, early)).toMatchObject({ status: 'expired' });
    await d.reportWorker(measured);
    // 8 wait. 10 ms is one round of 8: at most 7 may wait ahead.
    expect(await queued(d)).toBe(8);
    expect(await refusalOf(await d.post(body([11, 0, 0, 0], { timeoutMs: 10 })))).toEqual({
      status: 503,
      retryAfter: '1',
      problem: {
        type: `${PROBLEM_BASE}deadline-unmeetable`,
        title: 'Deadline cannot be met',
        status: 503,
        detail:
          "model 'affine' version 1 has 8 requests waiting, more than can be served before this " +
          "request's deadline (7 at most at the measured rate); retry in 1 s",
      },
    });
    expect(await queued(d)).toBe(8);
    // 20 ms is two rounds: up to 15 may wait ahead.
    await accepted(await d.post(body([12, 0, 0, 0], { timeoutMs: 20 })));
    expect(await queued(d)).toBe(9);
    // A request without a deadline, in a model without an objective, is never refused for one.
    await accepted(await d.post(body([13, 0, 0, 0])));
    expect(await queued(d)).toBe(10);
    // In an infer:bulk body each request is judged behind those of the body before it: with 10
    // waiting and up to 15 allowed ahead of a 20 ms deadline, the seventh is one too many.
    const bulk = await d.post(
      { requests: [20, 21, 22, 23, 24, 25, 26].map((n) => body([n, 0, 0, 0], { timeoutMs: 20 })) },
      {},
      '/v1/models/affine/infer:bulk',
    );
    expect(bulk.status).toBe(202);
    const { ids, rejected } = await bulkAnswerOf(bulk);
    expect(ids.map((id) => id !== null)).toEqual([true, true, true, true, true, true, false]);
    expect(rejected).toEqual([
      expect.objectContaining({
        index: 6,
        status: 503,
        type: `${PROBLEM_BASE}deadline-unmeetable`,
        retryAfterSeconds: 1,
      }),
    ]);
    expect(await queued(d)).toBe(16);
  });

  it('never refuses into an empty queue, nor while the queue is paused', async () => {
    const d = await deploy();
    // A round of 10 s: a 5 s deadline holds none, so no request may wait ahead of one.
    await d.reportWorker({
      ...measured,
      batchSizes: [
        { batchSize: 1, ms: 5_000 },
        { batchSize: 8, ms: 9_999 },
      ],
    });
    // With nobody ahead the request runs at once, whatever its deadline.
    const first = await accepted(await d.post(body([1, 0, 0, 0], { timeoutMs: 5_000 })));
    expect(await queued(d)).toBe(1);
    expect((await d.post(body([2, 0, 0, 0], { timeoutMs: 5_000 }))).status).toBe(503);
    // Paused, nothing drains: the request waits for resume, or ends expired at its deadline.
    await queueOf(d.store).pause('affine', 1);
    const held = await accepted(await d.post(body([3, 0, 0, 0], { timeoutMs: 5_000 })));
    expect(await recordOf(d, held)).toMatchObject({ status: 'queued' });
    expect(await recordOf(d, first)).toMatchObject({ status: 'queued' });
    expect(await queued(d)).toBe(2);
  });

  it("takes the model's latencyObjectiveMs as the deadline of a request without timeoutMs", async () => {
    const d = await deploy();
    await d.reportWorker(measured);
    const path = '/v1/models/affine-slo/infer';
    // The objective, 10 ms, is one round of 8.
    for (let i = 0; i < 8; i++) await accepted(await d.post(body([i, 1, 1, 1]), {}, path));
    const refused = await d.post(body([8, 1, 1, 1]), {}, path);
    expect(refused.status).toBe(503);
    expect((await problemOf(refused)).type).toBe(`${PROBLEM_BASE}deadline-unmeetable`);
    // Its own timeoutMs goes before the objective.
    await accepted(await d.post(body([9, 1, 1, 1], { timeoutMs: 20 }), {}, path));
    expect(await queued(d, 'affine-slo')).toBe(9);
  });
});

describe('timeoutMs', () => {
  it('ends a queued request expired past its deadline with no worker, as GET shows', async () => {
    const d = await deploy();
    const id = await accepted(await d.post(body([1, 2, 3, 4], { timeoutMs: 50 })));
    await sleep(100);
    const record = await recordOf(d, id);
    expect(record).toMatchObject({ id, status: 'expired', cached: false, error: EXPIRED_ERROR });
    expect(typeof record.finishedAt).toBe('string');
    expect(record.outputs).toBeUndefined();
    expect(await d.redis.exists(`${d.prefix}:payload:${id}`)).toBe(0);
    expect(await d.redis.zcard(`${d.prefix}:deadlines`)).toBe(0);
    expect(await d.redis.zcard(`${d.prefix}:queued:affine.v1`)).toBe(0);
    expect(await d.redis.ttl(`${d.prefix}:req:${id}`)).toBeGreaterThan(0);
  });

  it('ends a long-poll and an event stream with expired at the deadline, with no worker and no sweep', async () => {
    const d = await deploy();
    const polled = await accepted(await d.post(body([1, 2, 3, 4], { timeoutMs: 300 })));
    expect(await recordOf(d, polled, 30)).toMatchObject({
      id: polled,
      status: 'expired',
      error: EXPIRED_ERROR,
    });

    const streamed = await accepted(await d.post(body([4, 3, 2, 1], { timeoutMs: 300 })));
    const events = await (await d.get(`/v1/requests/${streamed}/events`)).text();
    const data = events
      .split('\n')
      .filter((line) => line.startsWith('data: '))
      .map((line) => JSON.parse(line.slice(6)) as Record<string, unknown>);
    expect(data).toHaveLength(2);
    expect(data[0]).toEqual({ id: streamed, status: 'queued' });
    expect(data[1]).toMatchObject({ id: streamed, status: 'expired', error: EXPIRED_ERROR });
  });

  it('publishes expired on the done and callback channels from the sweep, with nobody reading', async () => {
    const d = await deploy();
    const id = await accepted(
      await d.post(body([1, 2, 3, 4], { timeoutMs: 50, callback: { channel: 'cb-limits' } })),
    );
    const listener = await listen([`${d.prefix}:done:${id}`, 'cb-limits']);
    const sweeper = startDeadlineSweeper(d.store, { intervalMs: 25 });
    try {
      while (listener.messages.size < 2) await sleep(10);
    } finally {
      sweeper.stop();
      await listener.close();
    }
    for (const message of listener.messages.values()) {
      expect(message).toMatchObject({
        id,
        status: 'expired',
        model: 'affine',
        version: 1,
        cached: false,
        error: EXPIRED_ERROR,
      });
    }
    expect(await d.redis.hget(`${d.prefix}:req:${id}`, 'status')).toBe('expired');
  });

  it('never runs a request whose deadline passed while it was queued, whoever noticed first', async () => {
    const d = await deploy();
    // One expired by a read before any worker exists, one nobody looks at until a worker claims it.
    const read = await accepted(await d.post(body([1, 2, 3, 4], { timeoutMs: 50 })));
    const unread = await accepted(await d.post(body([5, 6, 7, 8], { timeoutMs: 50 })));
    const unreadDone = await listen([`${d.prefix}:done:${unread}`]);
    await sleep(100);
    expect(await recordOf(d, read)).toMatchObject({ status: 'expired' });

    d.startWorker();
    const fresh = await accepted(await d.post(body([9, 10, 11, 12])));
    expect(await finalRecord(d, fresh)).toMatchObject({ status: 'succeeded', batchSize: 1 });
    await drained(d);
    await unreadDone.close();

    expect(await batchRuns(d.workerMetrics)).toEqual({ count: 1, sum: 1 });
    expect(unreadDone.messages.get(`${d.prefix}:done:${unread}`)).toMatchObject({ status: 'expired' });
    for (const id of [read, unread]) {
      expect(await recordOf(d, id)).toMatchObject({ status: 'expired', error: EXPIRED_ERROR });
    }
    // The worker counts the one it found expired; the other left the queue when the read expired it.
    const expiredCount = (await d.workerMetrics.requests.get()).values.find(
      (v) => v.labels.status === 'expired',
    )?.value;
    expect(expiredCount).toBe(1);
  });

  it('expires a coalesced follower with an earlier deadline alone; its leader still runs', async () => {
    const d = await deploy();
    const leader = await accepted(await d.post(body([1, 2, 3, 4])));
    const follower = await accepted(await d.post(body([1, 2, 3, 4], { timeoutMs: 50 })));
    expect(await recordOf(d, follower)).toMatchObject({ status: 'queued', coalesced: true });
    await sleep(100);
    expect(await recordOf(d, follower)).toMatchObject({
      status: 'expired',
      coalesced: true,
      error: EXPIRED_ERROR,
    });
    expect(await recordOf(d, leader)).toMatchObject({ status: 'queued' });
    expect(await d.redis.lrange(`${d.prefix}:followers:${leader}`, 0, -1)).toEqual([]);

    d.startWorker();
    const done = await finalRecord(d, leader);
    expect(done).toMatchObject({ status: 'succeeded', outputs: { y: { data: [3, 5, 7, 9] } } });
    const after = await recordOf(d, follower);
    expect(after).toMatchObject({ status: 'expired', error: EXPIRED_ERROR });
    expect(after.outputs).toBeUndefined();
  });

  it('expires a follower past its deadline when its leader starts, even unread', async () => {
    const d = await deploy();
    const leader = await accepted(await d.post(body([1, 2, 3, 4])));
    const follower = await accepted(await d.post(body([1, 2, 3, 4], { timeoutMs: 50 })));
    const done = await listen([`${d.prefix}:done:${follower}`]);
    await sleep(100);
    d.startWorker();
    expect(await finalRecord(d, leader)).toMatchObject({ status: 'succeeded' });
    while (done.messages.size === 0) await sleep(10);
    await done.close();
    expect(done.messages.get(`${d.prefix}:done:${follower}`)).toMatchObject({
      id: follower,
      status: 'expired',
      error: EXPIRED_ERROR,
    });
    expect(await recordOf(d, follower)).toMatchObject({ status: 'expired' });
  });

  it('still runs an expired leader for a follower without a deadline', async () => {
    const d = await deploy();
    const leader = await accepted(await d.post(body([1, 2, 3, 4], { timeoutMs: 50 })));
    const follower = await accepted(await d.post(body([1, 2, 3, 4])));
    await sleep(100);
    expect(await recordOf(d, leader)).toMatchObject({ status: 'expired' });
    // Still queued for its follower: it stays in its queue (the streams entry carries its payload).
    expect(await waitsInQueue(d.store, leader)).toBe(true);
    d.startWorker();
    expect(await finalRecord(d, follower)).toMatchObject({
      status: 'succeeded',
      coalesced: true,
      outputs: { y: { data: [3, 5, 7, 9] } },
    });
    expect(await recordOf(d, leader)).toMatchObject({ status: 'expired' });
  });
});
