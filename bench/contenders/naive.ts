import { performance } from 'node:perf_hooks';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { DistinctInputs } from '../lib/inputs.ts';
import { LatencyHistogram, type LatencySummary } from '../lib/latency.ts';
import type { Outcome } from '../lib/load.ts';
import type { BenchModel } from '../lib/models.ts';
import { ManagedProcess, type RedisServer, startRedisServer } from '../lib/processes.ts';
import type { NaiveJobData, NaiveJobResult } from './naive-worker.ts';

const QUEUE = 'naive-infer';
const WAIT_TIMEOUT_MS = 30_000;
/**
 * Jobs the baseline worker runs at once: the best of 1, 2, 4 and 8 on the 2-core machine (64
 * clients: about 175, 139, 95 and 86 jobs/s). onnxruntime-node already spreads one run over both
 * cores, so concurrent runs of the same session only compete for them.
 */
export const NAIVE_WORKER_CONCURRENCY = 1;

export interface NaiveDeployment {
  /** Adds one job with a new distinct input and waits for its result, as the baseline's client does. */
  send(): Promise<Outcome>;
  stop(): Promise<void>;
}

/**
 * The baseline: a private redis-server, the naive worker in its own process, and in this process a
 * BullMQ client that adds a job per request and waits with `job.waitUntilFinished(queueEvents)`.
 */
export async function startNaive(
  model: BenchModel,
  inputs: DistinctInputs,
  workerScript: string,
  concurrency = NAIVE_WORKER_CONCURRENCY,
): Promise<NaiveDeployment> {
  const redis: RedisServer = await startRedisServer();
  let worker: ManagedProcess | undefined;
  let connection: Redis | undefined;
  let queue: Queue<NaiveJobData, NaiveJobResult> | undefined;
  let events: QueueEvents | undefined;
  const stop = async (): Promise<void> => {
    await events?.close().catch(() => undefined);
    await queue?.close().catch(() => undefined);
    connection?.disconnect();
    await worker?.stop();
    await redis.stop();
  };
  try {
    worker = new ManagedProcess('naive worker', process.execPath, [workerScript], {
      env: {
        ...process.env,
        NAIVE_REDIS_URL: redis.url,
        NAIVE_QUEUE: QUEUE,
        NAIVE_MODEL_PATH: model.modelPath,
        NAIVE_INPUT_NAME: model.inputName,
        NAIVE_CONCURRENCY: String(concurrency),
      },
    });
    await worker.waitForOutput(/naive worker ready/, 60_000);
    connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    queue = new Queue<NaiveJobData, NaiveJobResult>(QUEUE, { connection });
    events = new QueueEvents(QUEUE, { connection: { url: redis.url } });
    await events.waitUntilReady();
    // Each waiting client adds listeners to both (one per request in flight): not a leak.
    queue.setMaxListeners(0);
    events.setMaxListeners(0);
  } catch (error) {
    await stop();
    throw error;
  }
  const readyQueue = queue;
  const readyEvents = events;
  const shape = [...inputs.shape];

  const send = async (): Promise<Outcome> => {
    const tensor = inputs.nextTensor();
    const data = Buffer.from(tensor.buffer, tensor.byteOffset, tensor.byteLength).toString('base64');
    const job = await readyQueue.add(
      'infer',
      { shape, data },
      { removeOnComplete: { count: 1000 }, removeOnFail: { count: 1000 } },
    );
    try {
      const result = await job.waitUntilFinished(readyEvents, WAIT_TIMEOUT_MS);
      return { ok: true, inferMs: result.inferMs };
    } catch (error: unknown) {
      return {
        ok: false,
        error: `job failed: ${error instanceof Error ? error.message.slice(0, 120) : String(error)}`,
      };
    }
  };
  return { send, stop };
}

/**
 * The design's reference figure, measured here and now: a bare BullMQ `add` → `waitUntilFinished`
 * loop, one job at a time, an empty processor, client and worker in this process, a redis-server of
 * its own. It says how fast this machine is today against the one the targets were set on
 * (p50 0.8 ms), since P1's budget is absolute.
 */
export async function measureBullmqReference(warmup: number, measured: number): Promise<LatencySummary> {
  const redis: RedisServer = await startRedisServer();
  const name = 'reference-loop';
  const connection = { url: redis.url, maxRetriesPerRequest: null };
  const queue = new Queue(name, { connection });
  const events = new QueueEvents(name, { connection });
  const worker = new Worker(name, async () => undefined, { connection, concurrency: 1 });
  try {
    await Promise.all([events.waitUntilReady(), worker.waitUntilReady()]);
    const latency = new LatencyHistogram();
    for (let i = 0; i < warmup + measured; i++) {
      const started = performance.now();
      const job = await queue.add('noop', { i }, { removeOnComplete: { count: 100 }, removeOnFail: true });
      await job.waitUntilFinished(events, WAIT_TIMEOUT_MS);
      if (i >= warmup) latency.record(performance.now() - started);
    }
    return latency.summary();
  } finally {
    await worker.close().catch(() => undefined);
    await events.close().catch(() => undefined);
    await queue.close().catch(() => undefined);
    await redis.stop();
  }
}
