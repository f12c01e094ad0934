/**
 * R2: Redis killed and restarted (AOF on, appendfsync always) while clients keep submitting. A
 * request answered 202 was written and fsynced before the answer, so it survives; while Redis is
 * down the API answers 503 with Retry-After at once (its command connection has no offline queue)
 * and /readyz fails; the API and the worker reconnect by themselves, and the worker then finishes
 * everything accepted before and after the crash.
 */
import { rmSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestRedis, type TestRedis } from '../helpers/redis-server.ts';
import {
  type ApiProcess,
  type AppProcess,
  DoneCounter,
  explainRequests,
  formatTally,
  get,
  json,
  PREFIX,
  pollUntilTerminal,
  rowFor,
  sleep,
  startApi,
  startWorker,
  submit,
  tally,
  type WorkerProcess,
  waitFor,
} from './harness.ts';
import { SLOW_WIDTH, writeFaultModelRepository } from './models.ts';

const SENDERS = 4;
const PAUSE_BETWEEN_SUBMITS_MS = 10;
const ACCEPTED_PER_PHASE = 150;
/** A submit that takes longer than this is a hang: the API must fail fast while Redis is down. */
const SUBMIT_TIMEOUT_MS = 10_000;

let redis: TestRedis;
let repository: string;
let api: ApiProcess;
let worker: WorkerProcess;
let done: DoneCounter;
const processes: AppProcess[] = [];

beforeAll(async () => {
  redis = await startTestRedis({ appendfsync: 'always' });
  repository = writeFaultModelRepository({ models: ['slow'] });
  api = await startApi({ redisUrl: redis.url, modelRepository: repository });
  processes.push(api);
  worker = await startWorker({ redisUrl: redis.url, modelRepository: repository, env: { MODELS: 'slow' } });
  processes.push(worker);
  done = await DoneCounter.start(redis.url);
});

afterAll(async () => {
  for (const p of processes) await p.stop();
  await done?.close();
  await redis?.stop();
  if (repository) rmSync(repository, { recursive: true, force: true });
});

type Phase = 'before' | 'down' | 'after';

describe('R2: Redis restarted under load', () => {
  it('loses no accepted request, answers 503 with Retry-After while down, and recovers by itself', async () => {
    let phase: Phase = 'before';
    let stopped = false;
    let next = 0;
    const accepted: { id: string; n: number; phase: Phase }[] = [];
    const unavailable: Record<Phase, number> = { before: 0, down: 0, after: 0 };
    const unexpected: string[] = [];
    const sender = async (): Promise<void> => {
      while (!stopped) {
        const n = next++;
        const sentIn = phase;
        try {
          const answer = await submit(
            api.base,
            'slow',
            { inputs: { x: { dtype: 'float32', shape: [1, SLOW_WIDTH], data: rowFor(n, SLOW_WIDTH) } } },
            { timeoutMs: SUBMIT_TIMEOUT_MS },
          ).then(undefined, (error: unknown) => {
            throw new Error(`submit ${n} (${sentIn}): ${String(error)}`);
          });
          if (answer.status === 202) {
            accepted.push({ id: json<{ id: string }>(answer).id, n, phase: sentIn });
          } else if (
            answer.status === 503 &&
            answer.headers['retry-after'] === '1' &&
            String(answer.headers['content-type']).startsWith('application/problem+json') &&
            json<{ status: number }>(answer).status === 503
          ) {
            unavailable[sentIn]++;
          } else {
            unexpected.push(`${answer.status} ${JSON.stringify(answer.headers)} ${answer.body.toString()}`);
          }
        } catch (error) {
          unexpected.push(String(error));
        }
        await sleep(PAUSE_BETWEEN_SUBMITS_MS);
      }
    };
    const load = Promise.all(Array.from({ length: SENDERS }, sender));
    const count = (p: Phase): number => accepted.filter((a) => a.phase === p).length;

    await waitFor(() => count('before') >= ACCEPTED_PER_PHASE, 'load before the crash', 30_000);
    expect((await get(`${api.base}/readyz`)).status).toBe(200);
    // The slow model cannot keep up with the load: accepted requests wait in Redis when it dies.
    const unfinished = await unfinishedCount(
      redis.url,
      accepted.map((a) => a.id),
    );
    expect(unfinished).toBeGreaterThan(0);

    await redis.kill();
    phase = 'down';
    let readyWhileDown: { status: number; retryAfter: unknown; redis: string } | undefined;
    await waitFor(
      async () => {
        const answer = await get(`${api.base}/readyz`);
        readyWhileDown = {
          status: answer.status,
          retryAfter: answer.headers['retry-after'],
          redis: json<{ redis: string }>(answer).redis,
        };
        return unavailable.down >= 20;
      },
      'submits answered 503 while Redis is down',
      SUBMIT_TIMEOUT_MS,
    );
    expect(readyWhileDown).toEqual({ status: 503, retryAfter: '5', redis: 'unreachable' });

    await redis.restart();
    phase = 'after';
    // Nobody restarts the API or the worker: they reconnect on their own.
    await waitFor(async () => (await get(`${api.base}/readyz`)).status === 200, 'API ready again', 30_000);
    await waitFor(() => count('after') >= ACCEPTED_PER_PHASE, 'load after the restart', 30_000);
    stopped = true;
    await load;
    expect(unexpected).toEqual([]);

    const ids = accepted.map((a) => a.id);
    const records = await pollUntilTerminal(api.base, ids, 60_000);
    const t = tally(ids, records, done);
    console.log(
      formatTally('R2', t, {
        acceptedBefore: count('before'),
        acceptedWhileDown: count('down'),
        acceptedAfter: count('after'),
        unavailableWhileDown: unavailable.down,
        unfinishedAtCrash: unfinished,
        // batches whose result write Redis cut off: retried, not settled as done
        resultWritesRetried: worker.output().split('writing results failed').length - 1,
        unannounced: t.unannouncedIds.length,
      }),
    );
    if (t.lost > 0) {
      console.log((await explainRequests(redis.url, t.lostIds)).join('\n'));
      console.log(worker.output());
    }
    expect(t.lostIds).toEqual([]);
    expect(t).toMatchObject({
      completed: ids.length,
      lost: 0,
      duplicated: 0,
      byStatus: { succeeded: ids.length },
    });
    for (const { id, n } of accepted)
      expect(records.get(id)?.outputs?.y?.data).toEqual(rowFor(n, SLOW_WIDTH));
    // Neither process was restarted: both rode out the outage.
    for (const p of [api, worker]) {
      expect(await Promise.race([p.exited, sleep(0).then(() => 'running')])).toBe('running');
    }
  });
});

/** Accepted requests not yet terminal, read straight from Redis. */
async function unfinishedCount(redisUrl: string, ids: readonly string[]): Promise<number> {
  const redis = new Redis(redisUrl);
  try {
    const statuses = await Promise.all(ids.map((id) => redis.hget(`${PREFIX}:req:${id}`, 'status')));
    return statuses.filter((s) => s === 'queued' || s === 'running').length;
  } finally {
    redis.disconnect();
  }
}
