/**
 * The admission and deadline bookkeeping of the store's scripts against a real redis-server, with
 * the clock passed in explicitly so token-bucket arithmetic and deadlines are exact.
 */
import { randomBytes } from 'node:crypto';
import { cacheKey, encodePayload, encodeTensorMap, newRequestId, type TensorMap } from '@inferq/protocol';
import { type Admission, createRedisConnection, RequestStore, type SubmitParams } from '@inferq/store';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { startAsWorker } from '../helpers/queue.ts';

const inputs: TensorMap = { x: { dtype: 'float32', shape: [1, 4], data: new Float32Array([1, 2, 3, 4]) } };
const T0 = 1_700_000_000_000;

let redis: Redis;
let store: RequestStore;
let prefix: string;

function params(overrides: Partial<SubmitParams> = {}, values = [1, 2, 3, 4]): SubmitParams {
  const tensors: TensorMap = { x: { dtype: 'float32', shape: [1, 4], data: new Float32Array(values) } };
  return {
    id: newRequestId(),
    model: 'm',
    version: 1,
    tenant: 'acme',
    cacheKey: cacheKey({ model: 'm', version: 1, inputs: tensors }),
    useCache: true,
    cacheTtlSeconds: 60,
    payload: encodePayload({ inputs: tensors }),
    now: T0,
    ...overrides,
  };
}

const queuedKey = (): string => `${prefix}:queued:m.v1`;
const deadlinesKey = (): string => `${prefix}:deadlines`;

beforeEach(() => {
  prefix = `{adm-${randomBytes(4).toString('hex')}}`;
  redis = createRedisConnection(inject('redisUrl'), 'worker');
  store = new RequestStore({ redis, prefix, resultTtlSeconds: 60 });
});

afterEach(async () => {
  await redis.quit();
});

describe('token bucket', () => {
  const admission: Admission = { maxQueueDepth: 0, rateLimit: { perSecond: 1, burst: 2 } };

  it('lets a burst through, refuses with the seconds until a token, and refills at the rate', async () => {
    const submit = (now: number, values: number[]) => store.submit(params({ now, admission }, values));
    expect((await submit(T0, [1, 1, 1, 1])).kind).toBe('queued');
    expect((await submit(T0, [2, 2, 2, 2])).kind).toBe('queued');
    expect(await submit(T0, [3, 3, 3, 3])).toEqual({
      kind: 'rejected',
      rejection: { reason: 'rate-limited', retryAfterSeconds: 1, perSecond: 1, burst: 2 },
    });
    // 0.999 of a token is not one.
    expect((await submit(T0 + 999, [3, 3, 3, 3])).kind).toBe('rejected');
    expect((await submit(T0 + 1_000, [3, 3, 3, 3])).kind).toBe('queued');
    // A long pause refills to the burst, never beyond it.
    expect((await submit(T0 + 60_000, [4, 4, 4, 4])).kind).toBe('queued');
    expect((await submit(T0 + 60_000, [5, 5, 5, 5])).kind).toBe('queued');
    expect((await submit(T0 + 60_000, [6, 6, 6, 6])).kind).toBe('rejected');
  });

  it('charges cache hits and coalesced requests, but not refused ones', async () => {
    const tight: Admission = { maxQueueDepth: 1, rateLimit: { perSecond: 1, burst: 3 } };
    expect((await store.submit(params({ admission: tight }, [1, 1, 1, 1]))).kind).toBe('queued');
    // Refused by the full queue: no token taken.
    expect(await store.submit(params({ admission: tight }, [2, 2, 2, 2]))).toMatchObject({
      kind: 'rejected',
      rejection: { reason: 'queue-full' },
    });
    expect((await store.submit(params({ admission: tight }, [1, 1, 1, 1]))).kind).toBe('coalesced');
    expect(Number(await redis.hget(`${prefix}:rate:acme`, 'tokens'))).toBe(1);
    expect(await redis.pttl(`${prefix}:rate:acme`)).toBeGreaterThan(3_000);
  });

  it('does not refill when an API clock runs behind the bucket', async () => {
    const oneToken: Admission = { maxQueueDepth: 0, rateLimit: { perSecond: 1, burst: 1 } };
    expect((await store.submit(params({ now: T0, admission: oneToken }, [1, 1, 1, 1]))).kind).toBe('queued');
    expect(await store.submit(params({ now: T0 - 5_000, admission: oneToken }, [2, 2, 2, 2]))).toMatchObject({
      kind: 'rejected',
      rejection: { reason: 'rate-limited', retryAfterSeconds: 1 },
    });
    expect(await redis.hget(`${prefix}:rate:acme`, 'at')).toBe(String(T0));
  });
});

describe('queue depth', () => {
  const admission: Admission = { maxQueueDepth: 1 };

  it('still serves a cache hit when the queue is full', async () => {
    const first = params({ admission });
    await store.submit(first);
    const [claim] = await startAsWorker(store, [first.id], T0 + 1);
    expect(claim?.state).toBe('run');
    await store.complete([
      {
        id: first.id,
        model: 'm',
        version: 1,
        createdAt: T0,
        status: 'succeeded',
        outputs: encodeTensorMap(inputs),
        timings: { queueMs: 1, batchWaitMs: 0, inferMs: 1 },
        batchSize: 1,
        now: T0 + 2,
      },
    ]);
    expect((await store.submit(params({ admission }, [9, 9, 9, 9]))).kind).toBe('queued');
    expect((await store.submit(params({ admission }, [8, 8, 8, 8]))).kind).toBe('rejected');
    expect((await store.submit(params({ admission }))).kind).toBe('cached');
  });

  it('counts leaders per model version, and only while they are queued', async () => {
    const a = params({ admission: { maxQueueDepth: 5 } }, [1, 1, 1, 1]);
    const b = params({ admission: { maxQueueDepth: 5 } }, [2, 2, 2, 2]);
    const other = params({ version: 2, admission: { maxQueueDepth: 5 } }, [3, 3, 3, 3]);
    for (const p of [a, b, other]) await store.submit(p);
    await store.submit(params({ admission: { maxQueueDepth: 5 } }, [1, 1, 1, 1])); // a follower
    expect(await redis.zrange(queuedKey(), 0, -1)).toEqual(expect.arrayContaining([a.id, b.id]));
    expect(await redis.zcard(queuedKey())).toBe(2);
    expect(await redis.zrange(`${prefix}:queued:m.v2`, 0, -1)).toEqual([other.id]);
    await startAsWorker(store, [a.id], T0 + 1);
    expect(await store.cancel(b.id, T0 + 1)).toBe('cancelled');
    expect(await redis.zcard(queuedKey())).toBe(0);
  });
});

describe('idempotency', () => {
  const withKey = (key: string, fingerprint: string): Admission => ({
    maxQueueDepth: 0,
    idempotency: { key, fingerprint, ttlSeconds: 30 },
  });

  it('replays the first record, refuses another fingerprint, and forgets a key whose record is gone', async () => {
    const first = params({ admission: withKey('k', 'f1') });
    expect((await store.submit(first)).kind).toBe('queued');
    const replay = await store.submit(params({ admission: withKey('k', 'f1') }));
    expect(replay).toMatchObject({
      kind: 'replayed',
      record: { id: first.id, status: 'queued', tenant: 'acme' },
    });
    expect(await store.submit(params({ admission: withKey('k', 'f2') }))).toEqual({
      kind: 'rejected',
      rejection: { reason: 'idempotency-key-reused', key: 'k' },
    });
    expect(await redis.get(`${prefix}:idem:acme:k`)).toBe(`f1 ${first.id}`);
    expect(await redis.ttl(`${prefix}:idem:acme:k`)).toBeGreaterThan(0);

    await redis.del(`${prefix}:req:${first.id}`);
    const fresh = params({ admission: withKey('k', 'f1'), useCache: false });
    expect((await store.submit(fresh)).kind).toBe('queued');
    expect(await redis.get(`${prefix}:idem:acme:k`)).toBe(`f1 ${fresh.id}`);
  });
});

describe('deadlines', () => {
  it('tracks queued requests with a deadline, leaders and followers, until they run', async () => {
    const leader = params({ deadline: T0 + 100 });
    const follower = params({ deadline: T0 + 50 });
    const patient = params();
    for (const p of [leader, follower, patient]) await store.submit(p);
    expect(await redis.zrange(deadlinesKey(), 0, -1, 'WITHSCORES')).toEqual([
      follower.id,
      String(T0 + 50),
      leader.id,
      String(T0 + 100),
    ]);
    await startAsWorker(store, [leader.id], T0 + 10);
    expect(await redis.zcard(deadlinesKey())).toBe(0);
    expect((await store.get(follower.id, T0 + 60))?.status).toBe('running');
    // A follower attached to a running leader has nothing left to expire.
    await store.submit(params({ deadline: T0 + 20 }));
    expect(await redis.zcard(deadlinesKey())).toBe(0);
  });

  it('expires what is overdue at the sweep, drops entries that no longer wait, and leaves the rest', async () => {
    const due = params({ deadline: T0 + 10, useCache: false });
    const later = params({ deadline: T0 + 1_000, useCache: false });
    const cancelled = params({ deadline: T0 + 10, useCache: false });
    for (const p of [due, later, cancelled]) await store.submit(p);
    // An entry left behind: the request was cancelled by a path that did not remove it.
    expect(await store.cancel(cancelled.id, T0 + 1)).toBe('cancelled');
    await redis.zadd(deadlinesKey(), T0 + 10, cancelled.id);

    expect(await store.expireOverdue(T0 + 11)).toEqual([due.id]);
    expect(await redis.zrange(deadlinesKey(), 0, -1)).toEqual([later.id]);
    expect((await store.get(due.id, T0 + 11))?.status).toBe('expired');
    expect((await store.get(later.id, T0 + 11))?.status).toBe('queued');
    expect(await store.expireOverdue(T0 + 11)).toEqual([]);
    // A read past the deadline expires on the spot, sweep or not.
    expect(await store.get(later.id, T0 + 1_001)).toMatchObject({
      status: 'expired',
      error: { code: 'expired', message: 'the request passed its timeoutMs before it could run' },
    });
  });

  it('keeps an expired leader queued for its follower, and frees it with the last follower', async () => {
    const leader = params({ deadline: T0 + 10 });
    const follower = params();
    await store.submit(leader);
    await store.submit(follower);
    const [stream, entry] = await redis.hmget(`${prefix}:req:${leader.id}`, 'q', 'entry');
    // The leader's queue entry (which carries its payload) and its in-flight key.
    const leftovers = async (): Promise<number[]> => [
      (await redis.xrange(stream!, entry!, entry!)).length,
      await redis.exists(`${prefix}:inflight:${leader.cacheKey}`),
    ];
    expect(await store.expireOverdue(T0 + 11)).toEqual([leader.id]);
    expect(await leftovers()).toEqual([1, 1]);
    expect(await store.cancel(follower.id, T0 + 12)).toBe('cancelled');
    expect(await leftovers()).toEqual([0, 0]);
    // The sweep expired it before this start: `finished` (a start answers `expired` for what it expires).
    expect(await startAsWorker(store, [leader.id], T0 + 13)).toEqual([
      { id: leader.id, state: 'dropped', reason: 'finished' },
    ]);
  });

  it('publishes the expiry of an overdue follower at start and runs the leader for the others', async () => {
    const leader = params();
    const late = params({ deadline: T0 + 10 });
    const onTime = params({ deadline: T0 + 1_000 });
    for (const p of [leader, late, onTime]) await store.submit(p);
    const [claim] = await startAsWorker(store, [leader.id], T0 + 11);
    expect(claim?.state).toBe('run');
    expect((await store.get(late.id, T0 + 11))?.status).toBe('expired');
    expect((await store.get(onTime.id, T0 + 11))?.status).toBe('running');
    expect(await redis.lrange(`${prefix}:followers:${leader.id}`, 0, -1)).toEqual([onTime.id]);
    expect(await redis.zcard(deadlinesKey())).toBe(0);
  });
});
