/**
 * The core pipeline in one process, over real HTTP, a real redis-server and real onnxruntime-node:
 * the API's HTTP server and a ModelWorker serving a generated affine model (y = 2x + 1), whose
 * outputs are known exactly.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ShapedCosts } from '@inferq/batcher';
import { loadConfig } from '@inferq/config';
import { createLogger, createMetrics, type Metrics } from '@inferq/observability';
import { decodeCompletionMessage } from '@inferq/protocol';
import { loadModelRepository, type ModelRepository, type ModelVersion } from '@inferq/repository';
import { ModelSession } from '@inferq/runtime';
import { CompletionWatcher, createRedisConnection, RequestStore } from '@inferq/store';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createServer } from '../../apps/api/src/server.ts';
import { writeAffineModel, writeFixedBatchModel, writeTwoInputModel } from '../helpers/onnx-models.ts';
import { checkAnswersOf } from '../helpers/openapi-answers.ts';
import { startModelWorker, type TestModelWorker } from '../helpers/queue.ts';
import { enqueuedCount, queueOf, testQueue } from '../helpers/queue-backend.ts';
import { testCatalog } from '../helpers/test-api.ts';

const MAX_BATCH = 8;
const prefix = `{pipe-${randomBytes(4).toString('hex')}}`;
const config = { ...loadConfig({ LOG_LEVEL: 'silent' }), queuePrefix: prefix };
const logger = createLogger(config, 'worker');

let dir: string;
let repository: ModelRepository;
let session: ModelSession;
let apiRedis: Redis;
let workerRedis: Redis;
let subscriber: Redis;
let probe: Redis;
let apiStore: RequestStore;
let workerStore: RequestStore;
let workerMetrics: Metrics;
let worker: TestModelWorker | undefined;
let server: Server;
let base: string;

function affine(values: number[]): number[] {
  return values.map((v) => Math.fround(Math.fround(v * 2) + 1));
}

function body(values: number[], extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    inputs: { x: { dtype: 'float32', shape: [values.length / 4, 4], data: values } },
    ...extra,
  });
}

async function submit(values: number[], headers: Record<string, string> = {}, extra = {}): Promise<Response> {
  return fetch(`${base}/v1/models/affine/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: body(values, extra),
  });
}

async function waitRecord(id: string): Promise<Record<string, unknown>> {
  for (;;) {
    const res = await fetch(`${base}/v1/requests/${id}?wait=10`);
    const record = (await res.json()) as Record<string, unknown>;
    if (!['queued', 'running'].includes(record.status as string)) return record;
  }
}

function newWorker(
  version: ModelVersion,
  modelSession: ModelSession,
  options: { costs?: ShapedCosts } = {},
): TestModelWorker {
  return startModelWorker({
    redisUrl: inject('redisUrl'),
    version,
    session: modelSession,
    store: workerStore,
    jobAttempts: 3,
    metrics: workerMetrics,
    logger,
    ...options,
  });
}

function startWorker(): void {
  const version = repository.get('affine');
  if (!version) throw new Error('affine model missing');
  worker = newWorker(version, session);
}

async function stopWorker(): Promise<void> {
  await worker?.close();
  worker = undefined;
}

async function batchRuns(): Promise<{ count: number; sum: number }> {
  const values = (await workerMetrics.batchSize.get()).values;
  const count = values.find((v) => v.metricName === 'inferq_batch_size_count')?.value ?? 0;
  const sum = values.find((v) => v.metricName === 'inferq_batch_size_sum')?.value ?? 0;
  return { count, sum };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'inferq-pipeline-'));
  mkdirSync(join(dir, 'affine', '1'), { recursive: true });
  writeAffineModel(join(dir, 'affine', '1', 'model.onnx'), { scale: 2, bias: 1 });
  writeFileSync(
    join(dir, 'affine', 'config.json'),
    JSON.stringify({ maxBatchSize: MAX_BATCH, maxBatchDelayMs: 20 }),
  );
  // The affine model again under two latency objectives: 1 ms (missed by a request that waited
  // longer) and an hour (met by any request of this suite).
  for (const [name, latencyObjectiveMs] of [
    ['slo-tight', 1],
    ['slo-loose', 3_600_000],
  ] as const) {
    mkdirSync(join(dir, name, '1'), { recursive: true });
    writeAffineModel(join(dir, name, '1', 'model.onnx'), { scale: 2, bias: 1 });
    writeFileSync(
      join(dir, name, 'config.json'),
      JSON.stringify({ maxBatchSize: MAX_BATCH, latencyObjectiveMs }),
    );
  }
  mkdirSync(join(dir, 'fixed', '1'), { recursive: true });
  writeFixedBatchModel(join(dir, 'fixed', '1', 'model.onnx'));
  mkdirSync(join(dir, 'pair', '1'), { recursive: true });
  writeTwoInputModel(join(dir, 'pair', '1', 'model.onnx'));
  repository = await loadModelRepository(dir);
  session = await ModelSession.open(repository.get('affine')!);

  const url = inject('redisUrl');
  apiRedis = createRedisConnection(url, 'worker');
  workerRedis = createRedisConnection(url, 'worker');
  subscriber = createRedisConnection(url, 'subscriber');
  probe = createRedisConnection(url, 'subscriber');
  apiStore = new RequestStore({ redis: apiRedis, prefix, resultTtlSeconds: 60 });
  workerStore = new RequestStore({ redis: workerRedis, prefix, resultTtlSeconds: 60 });
  workerMetrics = createMetrics('worker');
  const api = createServer({
    config,
    store: apiStore,
    queue: testQueue(apiStore),
    watcher: new CompletionWatcher({ subscriber, prefix, instance: 'pipeline' }),
    catalog: testCatalog(repository, apiRedis, prefix),
    metrics: createMetrics('api'),
    logger: createLogger(config, 'api'),
  });
  server = api.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  checkAnswersOf(base);
});

afterAll(async () => {
  await stopWorker();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await session.close();
  for (const c of [apiRedis, workerRedis, subscriber, probe]) await c.quit();
  rmSync(dir, { recursive: true, force: true });
});

describe('core pipeline', () => {
  it('runs queued requests in full batches whose outputs equal the unbatched computation exactly', async () => {
    await stopWorker();
    const inputs = Array.from({ length: 2 * MAX_BATCH }, (_, i) => [i, i + 0.5, -i, i / 3]);
    const ids: string[] = [];
    for (const values of inputs) {
      const res = await submit(values, {}, { cache: false });
      expect(res.status).toBe(202);
      ids.push(((await res.json()) as { id: string }).id);
    }
    startWorker();
    const records = await Promise.all(ids.map(waitRecord));
    records.forEach((record, i) => {
      expect(record.status).toBe('succeeded');
      expect(record.batchSize).toBe(MAX_BATCH);
      const y = (record.outputs as Record<string, { dtype: string; shape: number[]; data: number[] }>).y;
      expect(y).toEqual({ dtype: 'float32', shape: [1, 4], data: affine(inputs[i]!) });
    });
  });

  it('serves a repeated input from the cache without enqueueing it', async () => {
    const values = [7, 8, 9, 10];
    const first = await submit(values, { prefer: 'wait=10' });
    expect(first.status).toBe(200);
    const before = await batchRuns();
    const enqueuedBefore = await enqueuedCount(apiStore, 'affine', 1);
    const second = await submit(values);
    expect(second.status).toBe(200);
    const record = (await second.json()) as Record<string, unknown>;
    expect(record).toMatchObject({ status: 'succeeded', cached: true });
    expect((record.outputs as { y: { data: number[] } }).y.data).toEqual(affine(values));
    expect(await enqueuedCount(apiStore, 'affine', 1)).toBe(enqueuedBefore);
    expect(await batchRuns()).toEqual(before);
  });

  it('runs N identical in-flight requests through the model once', async () => {
    await stopWorker();
    const values = [11, 12, 13, 14];
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await submit(values);
      expect(res.status).toBe(202);
      ids.push(((await res.json()) as { id: string }).id);
    }
    const before = await batchRuns();
    startWorker();
    const records = await Promise.all(ids.map(waitRecord));
    for (const record of records) {
      expect(record.status).toBe('succeeded');
      expect((record.outputs as { y: { data: number[] } }).y.data).toEqual(affine(values));
    }
    expect(records.filter((r) => r.coalesced === true)).toHaveLength(4);
    expect(await batchRuns()).toEqual({ count: before.count + 1, sum: before.sum + 1 });
  });

  it('publishes the completion on <prefix>:done:<id> as standard MessagePack', async () => {
    await stopWorker();
    const values = [21, 22, 23, 24];
    const res = await submit(values, {}, { cache: false });
    const { id } = (await res.json()) as { id: string };
    const message = new Promise<Buffer>((resolve) =>
      probe.once('messageBuffer', (_c: Buffer, m: Buffer) => resolve(m)),
    );
    await probe.subscribe(`${prefix}:done:${id}`);
    startWorker();
    const decoded = decodeCompletionMessage(await message);
    expect(decoded).toMatchObject({ id, status: 'succeeded', model: 'affine', version: 1, cached: false });
    expect(Array.from(decoded.outputs?.y?.data as Float32Array)).toEqual(affine(values));
    await probe.unsubscribe();
  });

  it('passes tensors through one request at a time for a model without a batch axis (maxBatchSize 0)', async () => {
    const fixed = repository.get('fixed')!;
    expect(fixed.config.maxBatchSize).toBe(0);
    const fixedSession = await ModelSession.open(fixed);
    const ids: string[] = [];
    const inputs = [
      [1, 2, 3, 4],
      [5, 6, 7, 8],
      [9, 10, 11, 12],
    ];
    for (const values of inputs) {
      const res = await fetch(`${base}/v1/models/fixed/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: body(values, { cache: false }),
      });
      expect(res.status).toBe(202);
      ids.push(((await res.json()) as { id: string }).id);
    }
    const fixedWorker = newWorker(fixed, fixedSession);
    const records = await Promise.all(ids.map(waitRecord));
    await fixedWorker.close();
    await fixedSession.close();
    records.forEach((record, i) => {
      expect(record).toMatchObject({ status: 'succeeded', batchSize: 1 });
      expect((record.outputs as { y: unknown }).y).toEqual({
        dtype: 'float32',
        shape: [1, 4],
        data: inputs[i],
      });
    });
  });

  it('returns only the outputs a request asked for, from a batch that computed them all', async () => {
    const pair = repository.get('pair')!;
    const pairSession = await ModelSession.open(pair);
    const tensor = (data: number[]) => ({ dtype: 'float32', shape: [1, 3], data });
    const send = (outputs: string[] | undefined, a: number[], b: number[]) =>
      fetch(`${base}/v1/models/pair/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          inputs: { a: tensor(a), b: tensor(b) },
          ...(outputs ? { outputs } : {}),
          cache: false,
        }),
      });
    const onlyProd = await send(['prod'], [1, 2, 3], [4, 5, 6]);
    const both = await send(undefined, [2, 2, 2], [3, 3, 3]);
    const ids = [((await onlyProd.json()) as { id: string }).id, ((await both.json()) as { id: string }).id];
    const pairWorker = newWorker(pair, pairSession);
    const [first, second] = await Promise.all(ids.map(waitRecord));
    await pairWorker.close();
    await pairSession.close();
    expect(first?.outputs).toEqual({ prod: { dtype: 'float32', shape: [1, 3], data: [4, 10, 18] } });
    expect(second?.outputs).toEqual({
      sum: { dtype: 'float32', shape: [1, 3], data: [5, 5, 5] },
      prod: { dtype: 'float32', shape: [1, 3], data: [6, 6, 6] },
    });
  });

  it('streams status events over SSE and ends the stream with the terminal event', async () => {
    await stopWorker();
    const res = await submit([31, 32, 33, 34], {}, { cache: false });
    const { id } = (await res.json()) as { id: string };
    const stream = await fetch(`${base}/v1/requests/${id}/events`);
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
    startWorker();
    const text = await stream.text();
    const events = text
      .split('\n\n')
      .map((block) => block.split('\n').find((line) => line.startsWith('data: ')))
      .filter((line): line is string => line !== undefined)
      .map((line) => JSON.parse(line.slice('data: '.length)) as { status: string });
    expect(events[0]?.status).toBe('queued');
    expect(events.at(-1)?.status).toBe('succeeded');
    expect(events.map((e) => e.status)).toEqual([...new Set(events.map((e) => e.status))]);
  });
});

describe('infer:bulk', () => {
  async function submitBulk(requests: unknown[]): Promise<Response> {
    return fetch(`${base}/v1/models/affine/infer:bulk`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ requests }),
    });
  }

  function affineRequest(values: number[], extra: Record<string, unknown> = {}): unknown {
    return { inputs: { x: { dtype: 'float32', shape: [values.length / 4, 4], data: values } }, ...extra };
  }

  it('accepts many requests in one call and answers each exactly, in full batches', async () => {
    await stopWorker();
    const waitingBefore = (await queueOf(apiStore).counts('affine', 1)).waiting;
    const inputs = Array.from({ length: 2 * MAX_BATCH + 3 }, (_, i) => [i, -i, i * 0.25, 100 + i]);
    const res = await submitBulk(inputs.map((values) => affineRequest(values, { cache: false })));
    expect(res.status).toBe(202);
    const { ids } = (await res.json()) as { ids: string[] };
    expect(ids).toHaveLength(inputs.length);
    expect(new Set(ids).size).toBe(inputs.length);
    expect((await queueOf(apiStore).counts('affine', 1)).waiting).toBe(waitingBefore + inputs.length);
    startWorker();
    const records = await Promise.all(ids.map(waitRecord));
    records.forEach((record, i) => {
      expect(record.status).toBe('succeeded');
      expect((record.outputs as { y: unknown }).y).toEqual({
        dtype: 'float32',
        shape: [1, 4],
        data: affine(inputs[i]!),
      });
    });
    // 19 requests, batches of at most 8: two full ones, and the 3 left in batches of their own. A
    // worker holds two batches' worth (16), so those 3 are taken as the first batch frees room:
    // one read on the streams backend, but job by job from BullMQ, where how many have arrived
    // when the runner is free depends on timing. Every record's batchSize says the batch it ran in,
    // so a batch of k shows k times: the 3 must be whole batches of sizes summing to 3.
    const sizes = records.map((r) => r.batchSize as number);
    expect(sizes.filter((size) => size === MAX_BATCH)).toHaveLength(2 * MAX_BATCH);
    const rest = sizes.filter((size) => size !== MAX_BATCH).sort();
    expect([
      [3, 3, 3],
      [1, 2, 2],
      [1, 1, 1],
    ]).toContainEqual(rest);
  });

  it('with a cost model, takes a backlog in batches of its most efficient size, not maxBatchSize', async () => {
    await stopWorker();
    const inputs = Array.from({ length: 2 * MAX_BATCH + 3 }, (_, i) => [i, 2 * i, -i, 7]);
    const res = await submitBulk(inputs.map((values) => affineRequest(values, { cache: false })));
    expect(res.status).toBe(202);
    const { ids } = (await res.json()) as { ids: string[] };
    // A fixed cost model (live runs teach it nothing): batches close at 3 rows, a backlog goes by 4.
    const costs = {
      estimate: () => 1,
      kneeBatchSize: () => 3,
      bestBatchSize: () => 4,
      observe: () => {},
      observeOverhead: () => {},
    };
    // affine's inputs are [N, 4]: their group key is "4".
    worker = newWorker(repository.get('affine')!, session, { costs: { groupKey: '4', costs } });
    const records = await Promise.all(ids.map(waitRecord));
    records.forEach((record, i) => {
      expect(record.status).toBe('succeeded');
      expect((record.outputs as { y: { data: unknown } }).y.data).toEqual(affine(inputs[i]!));
      expect(record.batchSize).toBeGreaterThanOrEqual(1);
      expect(record.batchSize).toBeLessThanOrEqual(4);
    });
    await stopWorker();
    startWorker();
  });

  it('refuses the whole body, naming the request, when one request is malformed', async () => {
    const enqueuedBefore = await enqueuedCount(apiStore, 'affine', 1);
    const res = await submitBulk([affineRequest([1, 2, 3, 4]), affineRequest([1, 2, 3])]);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const problem = (await res.json()) as { detail: string };
    expect(problem.detail).toMatch(/^requests\[1\]: /);
    expect(await enqueuedCount(apiStore, 'affine', 1)).toBe(enqueuedBefore);
  });

  it('refuses a body without a requests array and an empty one', async () => {
    const missing = await fetch(`${base}/v1/models/affine/infer:bulk`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(affineRequest([1, 2, 3, 4])),
    });
    expect(missing.status).toBe(400);
    const empty = await submitBulk([]);
    expect(empty.status).toBe(400);
    expect(((await empty.json()) as { detail: string }).detail).toBe('"requests" is empty');
  });

  it('answers a bulk body whose payloads are too large to travel inside their queue entries', async () => {
    await stopWorker();
    // 300 rows of 4 float32 values: 4,800 bytes of tensor each, over INLINE_PAYLOAD_BYTES.
    const big = (seed: number): number[] => Array.from({ length: 1200 }, (_, i) => seed + i);
    const requests = [big(0), big(5000), big(0)].map((values) => affineRequest(values));
    const res = await submitBulk(requests);
    expect(res.status).toBe(202);
    const { ids } = (await res.json()) as { ids: string[] };
    const [firstId, secondId] = ids as [string, string, string];
    expect(await probe.exists(`${prefix}:payload:${firstId}`, `${prefix}:payload:${secondId}`)).toBe(2);
    startWorker();
    const records = await Promise.all(ids.map(waitRecord));
    expect(records.map((r) => [r.status, r.coalesced === true])).toEqual([
      ['succeeded', false],
      ['succeeded', false],
      ['succeeded', true],
    ]);
    expect((records[1]!.outputs as { y: { data: number[] } }).y.data).toEqual(affine(big(5000)));
    expect((records[2]!.outputs as { y: { data: number[] } }).y.data).toEqual(affine(big(0)));
    // The payload keys go with their requests' ends.
    expect(await probe.exists(`${prefix}:payload:${firstId}`, `${prefix}:payload:${secondId}`)).toBe(0);
  });

  it('serves a cached input of a bulk body from the cache', async () => {
    const values = [41, 42, 43, 44];
    const first = await submit(values, { prefer: 'wait=10' });
    expect(first.status).toBe(200);
    const res = await submitBulk([affineRequest(values)]);
    expect(res.status).toBe(202);
    const { ids } = (await res.json()) as { ids: string[] };
    const record = await waitRecord(ids[0]!);
    expect(record).toMatchObject({ status: 'succeeded', cached: true });
    expect((record.outputs as { y: { data: number[] } }).y.data).toEqual(affine(values));
  });
});

describe('latency objective', () => {
  it("counts each succeeded request as meeting or missing its model's latencyObjectiveMs", async () => {
    const submitted: Record<string, string[]> = { 'slo-tight': [], 'slo-loose': [] };
    for (const name of Object.keys(submitted)) {
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${base}/v1/models/${name}/infer`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: body([i, i, i, 1000 + i], { cache: false }),
        });
        expect(res.status).toBe(202);
        submitted[name]!.push(((await res.json()) as { id: string }).id);
      }
    }
    // No worker serves them yet: every request waits longer than the tight objective's 1 ms.
    await new Promise((resolve) => setTimeout(resolve, 20));
    const workers = Object.keys(submitted).map((name) => newWorker(repository.get(name)!, session));
    try {
      const records = await Promise.all(Object.values(submitted).flat().map(waitRecord));
      for (const record of records) expect(record.status).toBe('succeeded');
    } finally {
      await Promise.all(workers.map((w) => w.close()));
    }
    const counted = (await workerMetrics.latencyObjective.get()).values;
    const count = (model: string, outcome: string): number =>
      counted.find((v) => v.labels.model === model && v.labels.outcome === outcome)?.value ?? 0;
    expect([count('slo-tight', 'met'), count('slo-tight', 'missed')]).toEqual([0, 3]);
    expect([count('slo-loose', 'met'), count('slo-loose', 'missed')]).toEqual([3, 0]);
    // A model without an objective is not counted.
    expect(counted.filter((v) => v.labels.model === 'affine')).toEqual([]);
  });
});
