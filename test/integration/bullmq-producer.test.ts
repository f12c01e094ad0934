/**
 * Producers beyond HTTP (issue 12 item 4; docs/api.md, "Producers beyond HTTP"): a service that
 * already uses BullMQ adds an inference job with BullMQ's own `Queue` class to a model version's queue
 * of a deployment on the bullmq backend, and reads the result back through QueueEvents and the
 * request record. The deployment here is a real ModelWorker on a generated affine model (y = 2x + 1)
 * over a real redis-server; the test sets the bullmq backend itself, whatever the suite's backend.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '@inferq/config';
import { createLogger, createMetrics } from '@inferq/observability';
import { cacheKey, encodePayload, newRequestId } from '@inferq/protocol';
import { loadModelRepository, type ModelVersion } from '@inferq/repository';
import { ModelSession } from '@inferq/runtime';
import {
  BullmqQueue,
  createRedisConnection,
  INFER_JOB_NAME,
  OUTBOX_GRACE_MS,
  RequestStore,
} from '@inferq/store';
import { Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { directRequestOf } from '../../apps/worker/src/direct-jobs.ts';
import { intakeCapacity, ModelWorker } from '../../apps/worker/src/model-worker.ts';
import { writeAffineModel } from '../helpers/onnx-models.ts';

const prefix = `{prod-${randomBytes(4).toString('hex')}}`;
const config = { ...loadConfig({ LOG_LEVEL: 'silent' }), queuePrefix: prefix };
const logger = createLogger(config, 'worker');

let dir: string;
let version: ModelVersion;
let session: ModelSession;
let redis: Redis;
let store: RequestStore;
let deployment: BullmqQueue;
let worker: ModelWorker | undefined;
/** The producer's own BullMQ objects, as a service outside inferq would make them. */
let producer: Queue;
let events: QueueEvents;

function affine(values: number[]): number[] {
  return values.map((v) => Math.fround(Math.fround(v * 2) + 1));
}

async function startWorker(): Promise<void> {
  const intake = await deployment.openIntake({
    model: 'affine',
    version: 1,
    consumer: 'producer-test',
    capacity: intakeCapacity(version),
    logger,
    direct: (body) => directRequestOf(version, body),
  });
  worker = new ModelWorker({
    version,
    session,
    intake,
    jobAttempts: 3,
    metrics: createMetrics('worker'),
    logger,
  });
  worker.start();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'inferq-producer-'));
  mkdirSync(join(dir, 'affine', '1'), { recursive: true });
  writeAffineModel(join(dir, 'affine', '1', 'model.onnx'), { scale: 2, bias: 1 });
  writeFileSync(join(dir, 'affine', 'config.json'), JSON.stringify({ maxBatchSize: 8, maxBatchDelayMs: 5 }));
  version = (await loadModelRepository(dir)).get('affine')!;
  session = await ModelSession.open(version);
  const url = inject('redisUrl');
  redis = createRedisConnection(url, 'worker');
  store = new RequestStore({ redis, prefix, resultTtlSeconds: 60 });
  deployment = new BullmqQueue({
    store,
    jobAttempts: 3,
    connect: () => createRedisConnection(url, 'worker'),
  });
  // Documented layout: queue `<model>.v<version>`, BullMQ prefix `<QUEUE_PREFIX>:bull`.
  const { hostname, port } = new URL(url);
  const connection = { host: hostname, port: Number(port) };
  producer = new Queue('affine.v1', { connection, prefix: `${prefix}:bull` });
  events = new QueueEvents('affine.v1', { connection, prefix: `${prefix}:bull` });
  await events.waitUntilReady();
});

afterAll(async () => {
  await worker?.close();
  await events.close();
  await producer.close();
  await deployment.close();
  await session.close();
  await redis.quit();
  rmSync(dir, { recursive: true, force: true });
});

describe('a BullMQ producer', () => {
  it('enqueues with Queue.add, sees it in getJobCounts, and reads the exact result from QueueEvents and the record', async () => {
    const job = await producer.add(INFER_JOB_NAME, {
      inputs: { x: { dtype: 'float32', shape: [1, 4], data: [1, 2, 3, 4] } },
      metadata: { source: 'bullmq' },
    });
    expect(await producer.getJobCounts('wait')).toEqual({ wait: 1 });

    const result = completion(String(job.id));
    await startWorker();
    expect(await result).toEqual({ id: job.id, status: 'succeeded' });
    const record = await store.get(String(job.id));
    expect(record).toMatchObject({
      id: job.id,
      model: 'affine',
      version: 1,
      status: 'succeeded',
      tenant: 'public',
      metadata: { source: 'bullmq' },
      outputs: { y: { dtype: 'float32', shape: [1, 4] } },
    });
    expect(Array.from(record!.outputs!.y!.data as Float32Array)).toEqual(affine([1, 2, 3, 4]));
  });

  it('fails a job whose body the API would refuse, with the API’s message, and writes no record', async () => {
    const job = await producer.add(INFER_JOB_NAME, {
      inputs: { x: { dtype: 'int32', shape: [1, 4], data: [1, 2, 3, 4] } },
    });
    await expect(job.waitUntilFinished(events, 30_000)).rejects.toThrow(/input 'x'.*float32/);
    expect(await store.get(String(job.id))).toBeUndefined();
  });
});

/**
 * The return value QueueEvents announces for a job's completion: listened to before the job can
 * finish, since a completed job is removed (and `waitUntilFinished` then finds no job).
 */
function completion(id: string): Promise<unknown> {
  return new Promise((resolve) => {
    const onCompleted = ({ jobId, returnvalue }: { jobId: string; returnvalue: unknown }): void => {
      if (jobId !== id) return;
      events.off('completed', onCompleted);
      resolve(returnvalue);
    };
    events.on('completed', onCompleted);
  });
}

/** The request's record once it has ended. */
async function settled(id: string): Promise<Awaited<ReturnType<RequestStore['get']>>> {
  for (;;) {
    const record = await store.get(id);
    if (record !== undefined && !['queued', 'running'].includes(record.status)) return record;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('the outbox between the submit script and BullMQ', () => {
  it('adds the job of a request whose API stopped after the script, once, and the request runs once', async () => {
    // No worker yet, so the job can be read once added (jobs are removed once they complete).
    await worker?.close();
    worker = undefined;
    // What an API that died between inferq's submit script and BullMQ's add leaves: the record and the
    // outbox entry, no job.
    const id = newRequestId();
    const inputs = { x: { dtype: 'float32' as const, shape: [1, 4], data: new Float32Array([5, 6, 7, 8]) } };
    const now = Date.now();
    const outcome = await store.submit(
      {
        id,
        model: 'affine',
        version: 1,
        tenant: 'public',
        cacheKey: cacheKey({ tenant: 'public', model: 'affine', version: 1, inputs }),
        useCache: false,
        cacheTtlSeconds: 0,
        payload: encodePayload({ inputs }),
        batchShape: '1;4',
        now,
      },
      store.keys.outbox,
    );
    expect(outcome).toEqual({ kind: 'queued' });
    expect(await producer.getJob(id)).toBeUndefined();

    // Within the grace period a sweep leaves it to its API; after it, the job is added, and a second
    // sweep adds nothing more.
    expect(await deployment.sweepOutbox(now)).toBe(0);
    expect(await deployment.sweepOutbox(now + OUTBOX_GRACE_MS + 1)).toBe(1);
    expect(await deployment.sweepOutbox(now + OUTBOX_GRACE_MS + 1)).toBe(0);
    // Read before a worker runs it (jobs are removed once they complete).
    expect((await producer.getJob(id))?.data).toEqual({ createdAt: now, batchShape: '1;4' });

    await startWorker();
    const record = await settled(id);
    expect(record).toMatchObject({ status: 'succeeded', batchSize: 1 });
    expect(Array.from(record!.outputs!.y!.data as Float32Array)).toEqual(affine([5, 6, 7, 8]));

    // An outbox that still names it (its API died after the add, before clearing it) is cleared by a
    // sweep without a new job; and a job added again all the same (a sweep racing the run) is dropped
    // by the start script: the request does not run twice.
    await store.redis.zadd(store.keys.outbox, now, id);
    expect(await deployment.sweepOutbox(now + OUTBOX_GRACE_MS + 1)).toBe(0);
    expect(await store.redis.zscore(store.keys.outbox, id)).toBeNull();
    const finished = completion(id);
    await producer.add(INFER_JOB_NAME, { createdAt: now }, { jobId: id });
    expect(await finished).toEqual({ id, status: 'finished' });
    expect(await store.get(id)).toMatchObject({ status: 'succeeded', batchSize: 1 });
  });
});
