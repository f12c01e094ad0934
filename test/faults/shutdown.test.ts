/**
 * R3: SIGTERM under load, with SHUTDOWN_GRACE_MS (config `shutdownGraceMs`) as the bound.
 * - Worker: stops taking requests, finishes the batch it is running (results written), gives the
 *   requests it had taken but not started back to the queue, and exits 0; another worker finishes
 *   the rest.
 * - API: stops accepting connections, answers every request it had already received (long-polls
 *   answer at once with the state they have), and exits 0; nothing is accepted behind a client's back.
 */
import { rmSync } from 'node:fs';
import { RequestStore } from '@inferq/store';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queueOf } from '../helpers/queue-backend.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis-server.ts';
import {
  type AppProcess,
  DoneCounter,
  exitWithin,
  formatTally,
  json,
  PREFIX,
  pollUntilTerminal,
  rowFor,
  startApi,
  startWorker,
  submit,
  tally,
  waitFor,
} from './harness.ts';
import { SLOW_WIDTH, writeFaultModelRepository } from './models.ts';

const TOTAL = 200;
const MAX_BATCH_SIZE = 16;
const GRACE = { SHUTDOWN_GRACE_MS: '30000' };
/** Bounds how long the test waits for an exit; the process's own deadline is SHUTDOWN_GRACE_MS. */
const EXIT_WAIT_MS = 60_000;

let redis: TestRedis;
let repository: string;
let done: DoneCounter;
let inspector: Redis;
let store: RequestStore;
const processes: AppProcess[] = [];

beforeAll(async () => {
  redis = await startTestRedis();
  repository = writeFaultModelRepository({ models: ['slow'], slowMaxBatchSize: MAX_BATCH_SIZE });
  done = await DoneCounter.start(redis.url);
  inspector = new Redis(redis.url);
  store = new RequestStore({ redis: inspector, prefix: PREFIX, resultTtlSeconds: 3600 });
});

afterAll(async () => {
  for (const p of processes) await p.stop();
  await done?.close();
  inspector?.disconnect();
  await redis?.stop();
  if (repository) rmSync(repository, { recursive: true, force: true });
});

function slowBody(n: number): unknown {
  return { inputs: { x: { dtype: 'float32', shape: [1, SLOW_WIDTH], data: rowFor(n, SLOW_WIDTH) } } };
}

async function statusesOf(ids: readonly string[]): Promise<(string | null)[]> {
  return Promise.all(ids.map((id) => inspector.hget(`${PREFIX}:req:${id}`, 'status')));
}

async function requestRecordCount(): Promise<number> {
  let count = 0;
  let cursor = '0';
  do {
    const [next, keys] = await inspector.scan(cursor, 'MATCH', `${PREFIX}:req:*`, 'COUNT', 1000);
    cursor = next;
    count += keys.length;
  } while (cursor !== '0');
  return count;
}

describe('R3: SIGTERM under load', () => {
  it('a worker finishes its running batch, hands the formed ones back and exits 0', async () => {
    const options = { redisUrl: redis.url, modelRepository: repository };
    const api = await startApi(options);
    processes.push(api);
    // info level: the worker logs how many requests it gave back.
    const worker = await startWorker({ ...options, env: { ...GRACE, MODELS: 'slow', LOG_LEVEL: 'info' } });
    processes.push(worker);
    const baseline = done.total;

    const idOf: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < TOTAL) {
          const n = next++;
          const answer = await submit(api.base, 'slow', slowBody(n));
          expect(answer.status).toBe(202);
          idOf[n] = json<{ id: string }>(answer).id;
        }
      }),
    );
    await waitFor(
      async () => (await statusesOf(idOf)).some((s) => s === 'running') && done.total - baseline >= 20,
      'a running batch',
      60_000,
      5,
    );
    worker.signal('SIGTERM');
    const exit = await exitWithin(worker, EXIT_WAIT_MS);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(worker.output()).not.toContain('grace period over');

    // Nothing it held is left behind: nothing taken, no request running, the rest waits in the queue.
    const statuses = await statusesOf(idOf);
    const succeeded = statuses.filter((s) => s === 'succeeded').length;
    expect(statuses.filter((s) => s === 'running')).toEqual([]);
    expect(await queueOf(store).counts('slow', 1)).toEqual({
      waiting: TOTAL - succeeded,
      taken: 0,
      held: 0,
      delayed: 0,
    });
    // It ran only what it had started before it began to stop (it logs that moment, then stops
    // dispatching in the same tick): one batch at most, since it runs one batch at a time.
    const stoppingAt = logTime(worker.output(), 'shutting down');
    const byWorker = await pollUntilTerminal(api.base, idOf, 0);
    const finishedWhileStopping = [...byWorker.values()].filter(
      (r) => r?.status === 'succeeded' && Date.parse(r.finishedAt ?? '') > stoppingAt,
    );
    for (const r of finishedWhileStopping)
      expect(Date.parse(r?.startedAt ?? '')).toBeLessThanOrEqual(stoppingAt);
    expect(finishedWhileStopping.length).toBeLessThanOrEqual(MAX_BATCH_SIZE);
    const completedBeforeStopping =
      [...byWorker.values()].filter((r) => r?.status === 'succeeded').length - finishedWhileStopping.length;
    const handedBack = [
      ...worker.output().matchAll(/"requests":(\d+),"msg":"stopping: gave unstarted requests back/g),
    ].reduce((sum, match) => sum + Number(match[1]), 0);

    const successor = await startWorker({ ...options, env: { ...GRACE, MODELS: 'slow' } });
    processes.push(successor);
    const records = await pollUntilTerminal(api.base, idOf, 120_000);
    await waitFor(() => done.total - baseline >= TOTAL, 'the last completion messages', 10_000);
    const t = tally(idOf, records, done);
    console.log(
      formatTally('R3 worker', t, {
        completedBeforeStopping,
        finishedWhileStopping: finishedWhileStopping.length,
        handedBack,
        exitCode: String(exit.code),
      }),
    );
    expect(t).toMatchObject({ accepted: TOTAL, completed: TOTAL, lost: 0, duplicated: 0 });
    expect(t.byStatus).toEqual({ succeeded: TOTAL });
    expect(t.unannouncedIds).toEqual([]);
    for (let n = 0; n < TOTAL; n++) {
      expect(records.get(idOf[n] as string)?.outputs?.y?.data).toEqual(rowFor(n, SLOW_WIDTH));
    }
    // Handed back, not failed: no request spent an attempt or was counted as stalled.
    for (const id of idOf) {
      expect(await inspector.hmget(`${PREFIX}:req:${id}`, 'attempts', 'stalls')).toEqual([null, null]);
    }
    await successor.stop();
    await api.stop();
  });

  it('the API stops accepting, answers every request it received and exits 0', async () => {
    const options = { redisUrl: redis.url, modelRepository: repository };
    const worker = await startWorker({ ...options, env: { ...GRACE, MODELS: 'slow' } });
    processes.push(worker);
    const api = await startApi({ ...options, env: GRACE });
    processes.push(api);
    const recordsBefore = await requestRecordCount();
    const baseline = done.total;

    // Long-polls held open by the API (Prefer: wait) and plain submits, until connections are refused.
    const accepted: { id: string; n: number; waited: boolean }[] = [];
    const refused: string[] = [];
    const unexpected: string[] = [];
    let next = 0;
    let signalled = false;
    let answeredAfterSignal = 0;
    const sender = (waited: boolean) => async (): Promise<void> => {
      for (;;) {
        const n = next++;
        try {
          const answer = await submit(
            api.base,
            'slow',
            slowBody(n),
            waited ? { headers: { prefer: 'wait=60' } } : {},
          );
          if (signalled) answeredAfterSignal++;
          if (answer.status === 202 || answer.status === 200) {
            accepted.push({ id: json<{ id: string }>(answer).id, n, waited });
          } else {
            unexpected.push(`${answer.status} ${answer.body.toString()}`);
          }
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code ?? String(error);
          // Refused: the listening socket is closed. Reset before any answer: a connection the kernel
          // queued but the server never took; the record count below shows no such request was taken.
          if (signalled && (code === 'ECONNREFUSED' || code === 'ECONNRESET')) {
            refused.push(code);
            return;
          }
          unexpected.push(`${code} ${String(error)}`);
          return;
        }
      }
    };
    const load = Promise.all([
      ...Array.from({ length: 16 }, sender(true)),
      ...Array.from({ length: 4 }, sender(false)),
    ]);
    await waitFor(() => accepted.length >= 100, 'accepted requests before the signal', 60_000);
    signalled = true;
    api.signal('SIGTERM');
    const exit = await exitWithin(api, EXIT_WAIT_MS);
    await load;
    expect(unexpected).toEqual([]);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(api.output()).not.toContain('grace period over');
    // Every sender ended on a refused connection: the API no longer accepts.
    expect(refused).toHaveLength(20);
    // No request was taken without an answer: one record per request answered 202/200.
    expect((await requestRecordCount()) - recordsBefore).toBe(accepted.length);

    // A fresh API reads the results; the worker kept running throughout.
    const reader = await startApi(options);
    processes.push(reader);
    const ids = accepted.map((a) => a.id);
    const records = await pollUntilTerminal(reader.base, ids, 120_000);
    await waitFor(() => done.total - baseline >= ids.length, 'the last completion messages', 10_000);
    const t = tally(ids, records, done);
    console.log(
      formatTally('R3 api', t, {
        longPolls: accepted.filter((a) => a.waited).length,
        answeredAfterSignal,
        refused: refused.length,
        exitCode: String(exit.code),
      }),
    );
    expect(t).toMatchObject({ completed: ids.length, lost: 0, duplicated: 0 });
    expect(t.byStatus).toEqual({ succeeded: ids.length });
    for (const { id, n } of accepted) {
      expect(records.get(id)?.outputs?.y?.data).toEqual(rowFor(n, SLOW_WIDTH));
    }
  });
});

/** The time of the first pino line of `output` whose message starts with `message`. */
function logTime(output: string, message: string): number {
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { time?: string; msg?: string };
    if (entry.msg?.startsWith(message) && entry.time !== undefined) return Date.parse(entry.time);
  }
  throw new Error(`no log line "${message}" in:\n${output}`);
}
