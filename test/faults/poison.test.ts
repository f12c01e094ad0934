/**
 * A poison request (an input that makes the model throw) fails alone. The poison model gathers table
 * rows by index, and onnxruntime fails the whole run when one index is out of range, so the worker
 * bisects the failed batch until the poison request stands alone: its companions succeed on their
 * first attempt, and it alone spends its JOB_ATTEMPTS and ends `failed` (`inference_failed`).
 */
import { rmSync } from 'node:fs';
import { RequestStore } from '@inferq/store';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queueOf } from '../helpers/queue-backend.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis-server.ts';
import {
  type ApiProcess,
  type AppProcess,
  DoneCounter,
  formatTally,
  get,
  PREFIX,
  pollUntilTerminal,
  startApi,
  startWorker,
  submit,
  tally,
  type WorkerProcess,
  waitFor,
} from './harness.ts';
import { POISON_INDEX, POISON_TABLE_ROWS, writeFaultModelRepository } from './models.ts';

/** Two full batches of the poison model (maxBatchSize 16), one poison request in each. */
const TOTAL = 32;
const POISONED = new Set([3, 20]);
const JOB_ATTEMPTS = 3;

let redis: TestRedis;
let repository: string;
let api: ApiProcess;
let worker: WorkerProcess;
let done: DoneCounter;
let inspector: Redis;
const processes: AppProcess[] = [];

beforeAll(async () => {
  redis = await startTestRedis();
  repository = writeFaultModelRepository({ models: ['poison'] });
  const env = { JOB_ATTEMPTS: String(JOB_ATTEMPTS) };
  api = await startApi({ redisUrl: redis.url, modelRepository: repository, env });
  processes.push(api);
  worker = await startWorker({
    redisUrl: redis.url,
    modelRepository: repository,
    env: { ...env, MODELS: 'poison' },
  });
  processes.push(worker);
  done = await DoneCounter.start(redis.url);
  inspector = new Redis(redis.url);
});

afterAll(async () => {
  for (const p of processes) await p.stop();
  await done?.close();
  inspector?.disconnect();
  await redis?.stop();
  if (repository) rmSync(repository, { recursive: true, force: true });
});

describe('a poison request in a batch', () => {
  it('fails alone after its retries while the rest of its batch succeeds on the first attempt', async () => {
    // Hold the queue while the requests arrive (one after the other, so the queue keeps their order),
    // so that the worker finds them all waiting and batches them.
    const store = new RequestStore({ redis: inspector, prefix: PREFIX, resultTtlSeconds: 3600 });
    await queueOf(store).pause('poison', 1);
    const ids: string[] = [];
    for (let n = 0; n < TOTAL; n++) {
      const index = POISONED.has(n) ? POISON_INDEX : n % POISON_TABLE_ROWS;
      const answer = await submit(api.base, 'poison', {
        inputs: { index: { dtype: 'int64', shape: [1], data: [index] } },
      });
      expect(answer.status).toBe(202);
      ids.push((JSON.parse(answer.body.toString()) as { id: string }).id);
    }
    expect((await queueOf(store).counts('poison', 1)).held).toBe(TOTAL);
    expect(await queueOf(store).resume('poison', 1)).toBe(TOTAL);

    const records = await pollUntilTerminal(api.base, ids, 60_000);
    await waitFor(() => done.total >= TOTAL, 'every completion message', 10_000);
    const t = tally(ids, records, done);
    console.log(
      formatTally('poison', t, {
        succeeded: t.byStatus.succeeded ?? 0,
        failed: t.byStatus.failed ?? 0,
      }),
    );
    expect(t).toMatchObject({
      accepted: TOTAL,
      completed: TOTAL,
      lost: 0,
      duplicated: 0,
      byStatus: { succeeded: TOTAL - POISONED.size, failed: POISONED.size },
    });
    expect(t.unannouncedIds).toEqual([]);

    for (let n = 0; n < TOTAL; n++) {
      const id = ids[n] as string;
      const record = records.get(id);
      // Failed runs that were tried again: the record counts them.
      const retried = Number((await inspector.hget(`${PREFIX}:req:${id}`, 'attempts')) ?? 0);
      if (POISONED.has(n)) {
        expect(record?.status).toBe('failed');
        expect(record?.error?.code).toBe('inference_failed');
        expect(record?.error?.message).toMatch(/out of data bounds/);
        expect(record?.outputs).toBeUndefined();
        expect(done.statuses.get(id)).toBe('failed');
        // It ran JOB_ATTEMPTS times: tried again after each failed run but the last.
        expect(retried).toBe(JOB_ATTEMPTS - 1);
      } else {
        const index = n % POISON_TABLE_ROWS;
        expect(record?.status).toBe('succeeded');
        expect(record?.outputs?.y).toEqual({ dtype: 'float32', shape: [1, 2], data: [index, index + 0.5] });
        expect(done.statuses.get(id)).toBe('succeeded');
        // Bisection happened inside one attempt: no innocent request spent a retry.
        expect(retried).toBe(0);
      }
    }
    // Every run is observed in inferq_batch_size, bisection re-runs included. Without bisection the
    // runs would hold each innocent request once and each poison one once per attempt; more means
    // failed batches were split and their halves re-run.
    const runs = await batchSizeHistogram(worker.metricsUrl, 'poison');
    const unsplit = TOTAL - POISONED.size + POISONED.size * JOB_ATTEMPTS;
    console.log(`poison: runs=${runs.count} requestsInRuns=${runs.sum} withoutBisection=${unsplit}`);
    expect(runs.sum).toBeGreaterThan(unsplit);
  });
});

/** Count and sum of the worker's inferq_batch_size histogram for one model. */
async function batchSizeHistogram(
  metricsUrl: string,
  model: string,
): Promise<{ count: number; sum: number }> {
  const text = (await get(`${metricsUrl}/metrics`)).body.toString('utf8');
  const value = (name: string): number => {
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`model="${model}"`));
    if (line === undefined) throw new Error(`no ${name} for ${model}`);
    return Number(line.split(' ').at(-1));
  };
  return { count: value('inferq_batch_size_count'), sum: value('inferq_batch_size_sum') };
}
