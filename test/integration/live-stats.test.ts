/**
 * The status page's `<prefix>:stats` hash over a real Redis: a reader sums only the reports of the
 * window, and writers drop the reports of processes long gone, so the hash does not grow with every
 * process that ever ran while nobody reads it.
 */
import { randomBytes } from 'node:crypto';
import { createRedisConnection, keysFor, LiveStatsRegistry, type LiveStatsReport } from '@inferq/store';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

type Redis = ReturnType<typeof createRedisConnection>;
let redis: Redis;

beforeAll(() => {
  redis = createRedisConnection(inject('redisUrl'), 'worker');
});

afterAll(async () => {
  await redis.quit();
});

const NOW = 1_800_000_000_000;
const report = (id: string, writtenAt: number): LiveStatsReport => ({
  id,
  startedAt: writtenAt - 1_000,
  writtenAt,
  versions: {},
  cache: {},
});

describe('LiveStatsRegistry', () => {
  it("drops a process's report two windows after its last write, on a writer's first write as on a read", async () => {
    const prefix = `{stats-${randomBytes(4).toString('hex')}}`;
    const key = keysFor(prefix).stats;
    const old = new LiveStatsRegistry({ redis, prefix });
    await old.write(report('gone-long-ago', NOW - 10 * 60_000));
    await old.write(report('stopped-a-minute-ago', NOW - 60_000));
    expect((await redis.hkeys(key)).sort()).toEqual(['gone-long-ago', 'stopped-a-minute-ago']);

    // A new process: its first write prunes the hash; the recent report still counts for a reader
    // of an earlier moment, so it stays.
    await new LiveStatsRegistry({ redis, prefix }).write(report('new', NOW));
    expect((await redis.hkeys(key)).sort()).toEqual(['new', 'stopped-a-minute-ago']);

    // A reader sums only the reports written within the window.
    const read = await new LiveStatsRegistry({ redis, prefix }).read(NOW);
    expect(read.map((r) => r.id)).toEqual(['new']);
  });
});
