/**
 * R1: `kill -9` of a worker that holds a batch, with a few hundred requests in flight. The entries it
 * held stay pending in the queue's consumer group, leased to it, and nobody renews the lease; once it
 * lapses (10 s) the next reclaim of a live worker (every 2 s) takes them over and they run again. The
 * start script runs a request still marked `running` again (counting the stall), and the completion
 * script ignores a record that is already terminal, so each request ends once and is announced once.
 */
import { rmSync } from 'node:fs';
import { MAX_STALLS, RequestStore } from '@inferq/store';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queueOf } from '../helpers/queue-backend.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis-server.ts';
import {
  type ApiProcess,
  type AppProcess,
  DoneCounter,
  formatTally,
  PREFIX,
  pollUntilTerminal,
  rowFor,
  startApi,
  startWorker,
  submit,
  takenRequestIds,
  tally,
  waitFor,
} from './harness.ts';
import { SLOW_WIDTH, writeFaultModelRepository } from './models.ts';

const TOTAL = 300;
const CONCURRENCY = 8;

let redis: TestRedis;
let repository: string;
let api: ApiProcess;
let done: DoneCounter;
let inspector: Redis;
let store: RequestStore;
const processes: AppProcess[] = [];

beforeAll(async () => {
  redis = await startTestRedis();
  repository = writeFaultModelRepository({ models: ['slow'] });
  api = await startApi({ redisUrl: redis.url, modelRepository: repository });
  processes.push(api);
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

describe('R1: a worker killed with SIGKILL while it holds a batch', () => {
  it('every accepted request still ends once, announced once', async () => {
    const workerEnv = { MODELS: 'slow' };
    const victim = await startWorker({ redisUrl: redis.url, modelRepository: repository, env: workerEnv });
    processes.push(victim);

    const idOf: string[] = [];
    const unexpected: string[] = [];
    let next = 0;
    const submitter = async (): Promise<void> => {
      while (next < TOTAL) {
        const n = next++;
        const answer = await submit(api.base, 'slow', {
          inputs: { x: { dtype: 'float32', shape: [1, SLOW_WIDTH], data: rowFor(n, SLOW_WIDTH) } },
        });
        if (answer.status === 202) idOf[n] = (JSON.parse(answer.body.toString()) as { id: string }).id;
        else unexpected.push(`${answer.status} ${answer.body.toString()}`);
      }
    };
    const load = Promise.all(Array.from({ length: CONCURRENCY }, submitter));

    // Kill it mid-batch: some results are out, it holds requests, and some of them are running.
    let runningAtKill = 0;
    await waitFor(
      async () => {
        if (done.total < 40) return false;
        if ((await queueOf(store).counts('slow', 1)).taken === 0) return false;
        const ids = idOf.filter((id) => id !== undefined);
        const statuses = await Promise.all(ids.map((id) => inspector.hget(`${PREFIX}:req:${id}`, 'status')));
        runningAtKill = statuses.filter((s) => s === 'running').length;
        return runningAtKill > 0;
      },
      'the worker to hold a running batch',
      60_000,
      5,
    );
    victim.signal('SIGKILL');
    expect((await victim.exited).signal).toBe('SIGKILL');
    await redisDroppedDeadWorker();
    // With the only worker dead, what is taken is exactly what it held.
    const heldIds = await takenRequestIds(inspector, 'slow');
    expect(heldIds.length).toBeGreaterThan(0);
    const statusAtKill = await Promise.all(
      heldIds.map((id) => inspector.hget(`${PREFIX}:req:${id}`, 'status')),
    );
    const heldRunning = new Set(heldIds.filter((_, i) => statusAtKill[i] === 'running'));
    const completedBeforeKill = done.total;

    // A replacement worker: its reclaim takes over the dead worker's requests once their lease lapses.
    const rescuer = await startWorker({ redisUrl: redis.url, modelRepository: repository, env: workerEnv });
    processes.push(rescuer);
    await load;
    expect(unexpected).toEqual([]);

    const accepted = idOf.filter((id) => id !== undefined);
    const records = await pollUntilTerminal(api.base, accepted, 120_000);
    // Every completion message has been published once the records are terminal; let the last ones land.
    await waitFor(() => done.total >= accepted.length, 'the last completion messages', 10_000);
    const t = tally(accepted, records, done);
    console.log(
      formatTally('R1', t, { heldByKilledWorker: heldIds.length, runningAtKill, completedBeforeKill }),
    );

    expect(t).toMatchObject({
      accepted: TOTAL,
      completed: TOTAL,
      lost: 0,
      duplicated: 0,
      byStatus: { succeeded: TOTAL },
    });
    expect(t.unannouncedIds).toEqual([]);
    expect(done.total).toBe(TOTAL);
    for (let n = 0; n < TOTAL; n++) {
      expect(records.get(idOf[n] as string)?.outputs?.y?.data).toEqual(rowFor(n, SLOW_WIDTH));
    }
    // The dead worker's requests came back through the reclaim, once each, and ran again: a stall
    // counted for those it had started, none for those it had only taken.
    for (const id of heldIds) {
      const stalls = await inspector.hget(`${PREFIX}:req:${id}`, 'stalls');
      expect(stalls).toBe(heldRunning.has(id) ? '1' : null);
      expect(done.counts.get(id)).toBe(1);
    }
    expect(await queueOf(store).counts('slow', 1)).toEqual({ waiting: 0, taken: 0, held: 0, delayed: 0 });
    expect(await rescuer.stop()).toEqual({ code: 0, signal: null });
  });

  it('a request restarted after a stall more than MAX_STALLS times ends failed (worker_lost), once', async () => {
    const workerEnv = { MODELS: 'slow' };
    const baseline = done.total;
    const ids = await Promise.all(
      Array.from({ length: 64 }, async (_, n) => {
        const answer = await submit(api.base, 'slow', {
          inputs: { x: { dtype: 'float32', shape: [1, SLOW_WIDTH], data: rowFor(1000 + n, SLOW_WIDTH) } },
        });
        expect(answer.status).toBe(202);
        return (JSON.parse(answer.body.toString()) as { id: string }).id;
      }),
    );
    const statusOf = async (id: string): Promise<string | null> =>
      inspector.hget(`${PREFIX}:req:${id}`, 'status');
    // A worker is killed while it runs a batch. Whether the batch seen running is still running when
    // the kill lands is a race, so the kill is checked, not assumed: once Redis has dropped the dead
    // worker's connections it has run every command the worker sent, and the statuses read then are
    // final. A kill that found no batch running (it had just ended) costs nothing (its requests were
    // only taken, and run normally) and is tried again with a new worker.
    let held: string[] = [];
    let unfinished = new Set<string>();
    let kills = 0;
    while (unfinished.size === 0) {
      if (kills++ === 5) throw new Error('five workers killed, none while it ran a batch');
      const victim = await startWorker({ redisUrl: redis.url, modelRepository: repository, env: workerEnv });
      processes.push(victim);
      await waitFor(
        async () => (await Promise.all(ids.map(statusOf))).includes('running'),
        'a running batch',
        60_000,
        5,
      );
      victim.signal('SIGKILL');
      await victim.exited;
      await redisDroppedDeadWorker();
      held = await takenRequestIds(inspector, 'slow');
      // The ones it had started: as if two workers had already died running them, this stall is one
      // too many. (Those it had only taken run normally.)
      const statuses = await Promise.all(held.map(async (id) => [id, await statusOf(id)] as const));
      unfinished = new Set(statuses.filter(([, status]) => status === 'running').map(([id]) => id));
    }
    expect(held.length).toBeGreaterThan(0);
    for (const id of unfinished) await inspector.hset(`${PREFIX}:req:${id}`, 'stalls', String(MAX_STALLS));

    const rescuer = await startWorker({ redisUrl: redis.url, modelRepository: repository, env: workerEnv });
    processes.push(rescuer);
    const records = await pollUntilTerminal(api.base, ids, 120_000);
    await waitFor(() => done.total - baseline >= ids.length, 'the last completion messages', 10_000);
    const t = tally(ids, records, done);
    console.log(formatTally('R1 stall limit', t, { kills, held: held.length, workerLost: unfinished.size }));
    expect(t).toMatchObject({ accepted: 64, completed: 64, lost: 0, duplicated: 0 });
    expect(t.byStatus).toEqual({ succeeded: 64 - unfinished.size, failed: unfinished.size });
    expect(t.unannouncedIds).toEqual([]);
    for (const id of ids) {
      const record = records.get(id);
      if (unfinished.has(id)) {
        expect(record?.error?.code).toBe('worker_lost');
        expect(done.statuses.get(id)).toBe('failed');
      } else {
        expect(record?.status).toBe('succeeded');
      }
    }
    expect(await rescuer.stop()).toEqual({ code: 0, signal: null });
  });
});

/**
 * Once Redis has dropped a killed worker's connections (the only worker of these tests), it has run
 * every command the worker sent before it died: what is read after this is final.
 */
async function redisDroppedDeadWorker(): Promise<void> {
  await waitFor(
    async () => !String(await inspector.call('CLIENT', 'LIST')).includes('name=inferq-worker'),
    "Redis dropping the dead worker's connections",
    30_000,
  );
}
