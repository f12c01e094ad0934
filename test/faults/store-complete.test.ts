/**
 * A pipeline resolves even when commands in it fail: ioredis reports each command's error in its
 * [error, result] pair. When Redis dies in the middle of a large completion pipeline, the commands
 * it had not answered come back as "Command aborted due to connection close" while the pipeline
 * itself resolves; RequestStore.complete must reject then, or the worker settles jobs whose results
 * were never written (found by R2: records left `running` behind completed BullMQ jobs). A full
 * Redis (maxmemory reached, noeviction) refuses the completion scripts the same way, on demand.
 */
import { createRedisConnection, RequestStore } from '@inferq/store';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestRedis, type TestRedis } from '../helpers/redis-server.ts';
import { PREFIX } from './harness.ts';

let redis: TestRedis;
let admin: Redis;
let connection: Redis;

beforeAll(async () => {
  redis = await startTestRedis();
  admin = new Redis(redis.url);
  connection = createRedisConnection(redis.url, 'worker');
});

afterAll(async () => {
  connection?.disconnect();
  admin?.disconnect();
  await redis?.stop();
});

describe('RequestStore.complete', () => {
  it('rejects when Redis refuses the completion scripts of a pipeline', async () => {
    const store = new RequestStore({ redis: connection, prefix: PREFIX, resultTtlSeconds: 60 });
    const now = Date.now();
    const completion = (id: string) => ({
      id,
      model: 'm',
      version: 1,
      createdAt: now,
      status: 'failed' as const,
      error: { code: 'inference_failed', message: 'x' },
      timings: { queueMs: 0, batchWaitMs: 0, inferMs: 0 },
      batchSize: 2,
      now,
    });
    await admin.hset(`${PREFIX}:req:a`, 'id', 'a', 'status', 'running', 'createdAt', String(now));
    await admin.config('SET', 'maxmemory', '1');
    try {
      await expect(store.complete([completion('a'), completion('b')])).rejects.toThrow(/^OOM/);
    } finally {
      await admin.config('SET', 'maxmemory', '0');
    }
    expect(await admin.hget(`${PREFIX}:req:a`, 'status')).toBe('running');

    await store.complete([completion('a')]);
    expect(await admin.hget(`${PREFIX}:req:a`, 'status')).toBe('failed');
  });
});
