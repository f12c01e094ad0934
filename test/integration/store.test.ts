import { randomBytes } from 'node:crypto';
import {
  cacheKey,
  decodeCompletionMessage,
  decodeTensorMap,
  encodePayload,
  encodeTensorMap,
  newRequestId,
  type TensorMap,
} from '@inferq/protocol';
import { createRedisConnection, RequestStore, type SubmitParams } from '@inferq/store';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';

const inputs: TensorMap = { x: { dtype: 'float32', shape: [1, 4], data: new Float32Array([1, 2, 3, 4]) } };
const outputs: TensorMap = { y: { dtype: 'float32', shape: [1, 4], data: new Float32Array([2, 4, 6, 8]) } };

let redis: Redis;
let subscriber: Redis;
let store: RequestStore;
let prefix: string;

function params(overrides: Partial<SubmitParams> = {}): SubmitParams {
  return {
    id: newRequestId(),
    model: 'm',
    version: 1,
    tenant: 'public',
    cacheKey: cacheKey({ model: 'm', version: 1, inputs }),
    useCache: true,
    cacheTtlSeconds: 60,
    payload: encodePayload({ inputs }),
    now: Date.now(),
    ...overrides,
  };
}

async function completeSucceeded(id: string, createdAt: number): Promise<void> {
  await store.complete([
    {
      id,
      model: 'm',
      version: 1,
      createdAt,
      status: 'succeeded',
      outputs: encodeTensorMap(outputs),
      timings: { queueMs: 1, batchWaitMs: 0, inferMs: 2 },
      batchSize: 1,
      now: createdAt + 5,
    },
  ]);
}

beforeEach(() => {
  prefix = `{t-${randomBytes(4).toString('hex')}}`;
  redis = createRedisConnection(inject('redisUrl'), 'worker');
  subscriber = createRedisConnection(inject('redisUrl'), 'subscriber');
  store = new RequestStore({ redis, prefix, resultTtlSeconds: 60 });
});

afterEach(async () => {
  await store.close();
  await redis.quit();
  await subscriber.quit();
});

describe('RequestStore', () => {
  it('enqueues a new request, coalesces an identical one and serves the third from the cache', async () => {
    const leader = params();
    expect(await store.submit(leader)).toEqual({ kind: 'queued' });
    const queue = store.queue('m', 1);
    expect(await queue.count()).toBe(1);

    const follower = params();
    expect(await store.submit(follower)).toEqual({ kind: 'coalesced', leaderId: leader.id });
    expect(await queue.count()).toBe(1);
    expect((await store.get(follower.id))?.status).toBe('queued');

    const claims = await store.claim([leader.id], Date.now());
    expect(claims).toHaveLength(1);
    expect(claims[0]?.state).toBe('run');
    expect((await store.get(follower.id))?.status).toBe('running');

    await completeSucceeded(leader.id, leader.now);
    const leaderRecord = await store.get(leader.id);
    expect(leaderRecord).toMatchObject({ status: 'succeeded', cached: false, batchSize: 1 });
    expect(leaderRecord?.outputs?.y?.data).toEqual(new Float32Array([2, 4, 6, 8]));
    const followerRecord = await store.get(follower.id);
    expect(followerRecord).toMatchObject({ status: 'succeeded', cached: false, coalesced: true });
    expect(followerRecord?.outputs?.y?.data).toEqual(new Float32Array([2, 4, 6, 8]));

    const third = params();
    const hit = await store.submit(third);
    expect(hit.kind).toBe('cached');
    if (hit.kind !== 'cached') throw new Error('unreachable');
    expect(hit.record).toMatchObject({ id: third.id, status: 'succeeded', cached: true });
    expect(hit.record.outputs?.y?.data).toEqual(new Float32Array([2, 4, 6, 8]));
    expect(await queue.count()).toBe(1);
  });

  it('does not use the cache or coalesce when the request opts out', async () => {
    const a = params({ useCache: false });
    const b = params({ useCache: false });
    expect(await store.submit(a)).toEqual({ kind: 'queued' });
    expect(await store.submit(b)).toEqual({ kind: 'queued' });
    expect(await store.queue('m', 1).count()).toBe(2);
  });

  it('publishes a standard MessagePack completion on the done channel of leader and follower', async () => {
    const leader = params();
    const follower = params();
    await store.submit(leader);
    await store.submit(follower);
    const received = new Map<string, Buffer>();
    const both = new Promise<void>((resolve) => {
      subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => {
        received.set(channel.toString(), message);
        if (received.size === 2) resolve();
      });
    });
    await subscriber.subscribe(`${prefix}:done:${leader.id}`, `${prefix}:done:${follower.id}`);
    await store.claim([leader.id], Date.now());
    await completeSucceeded(leader.id, leader.now);
    await both;
    for (const id of [leader.id, follower.id]) {
      const message = decodeCompletionMessage(received.get(`${prefix}:done:${id}`)!);
      expect(message).toMatchObject({ id, status: 'succeeded', model: 'm', version: 1, cached: false });
      expect(message.outputs?.y?.data).toEqual(new Float32Array([2, 4, 6, 8]));
    }
  });

  it('also publishes on the callback channel the request named', async () => {
    const request = params({ callbackChannel: `${prefix}:mine` });
    await store.submit(request);
    const got = new Promise<Buffer>((resolve) =>
      subscriber.on('messageBuffer', (_c: Buffer, m: Buffer) => resolve(m)),
    );
    await subscriber.subscribe(`${prefix}:mine`);
    await store.claim([request.id], Date.now());
    await completeSucceeded(request.id, request.now);
    expect(decodeCompletionMessage(await got)).toMatchObject({ id: request.id, status: 'succeeded' });
  });

  it('cancels a queued request once, refuses a second time, and the claim drops it', async () => {
    const request = params();
    await store.submit(request);
    expect(await store.cancel(request.id, Date.now())).toBe('cancelled');
    expect(await store.cancel(request.id, Date.now())).toBe('conflict');
    expect(await store.cancel('nope', Date.now())).toBe('missing');
    expect(await store.claim([request.id], Date.now())).toEqual([
      { id: request.id, state: 'dropped', reason: 'cancelled' },
    ]);
    expect((await store.get(request.id))?.status).toBe('cancelled');
    // The in-flight key is released: the same input is a new leader, not a follower of a dead request.
    expect(await store.submit(params())).toEqual({ kind: 'queued' });
  });

  it('refuses to cancel a running request', async () => {
    const request = params();
    await store.submit(request);
    await store.claim([request.id], Date.now());
    expect(await store.cancel(request.id, Date.now())).toBe('conflict');
  });

  it('expires a request past its deadline at claim time, before inference', async () => {
    const now = Date.now();
    const request = params({ deadline: now + 10, now });
    await store.submit(request);
    expect(await store.claim([request.id], now + 11)).toEqual([
      { id: request.id, state: 'dropped', reason: 'expired' },
    ]);
    const record = await store.get(request.id);
    expect(record?.status).toBe('expired');
    expect(record?.error?.code).toBe('expired');
  });

  it('is idempotent when a re-run completes a request twice', async () => {
    const request = params();
    await store.submit(request);
    await store.claim([request.id], Date.now());
    await completeSucceeded(request.id, request.now);
    const first = await store.get(request.id);
    await completeSucceeded(request.id, request.now + 100);
    expect(await store.get(request.id)).toEqual(first);
  });

  it('keeps the payload bytes exactly as submitted', async () => {
    const request = params();
    await store.submit(request);
    const [claim] = await store.claim([request.id], Date.now());
    if (claim?.state !== 'run') throw new Error('expected a runnable claim');
    expect(Buffer.from(claim.payload).equals(Buffer.from(request.payload))).toBe(true);
    expect(decodeTensorMap(encodeTensorMap(inputs)).x?.data).toEqual(inputs.x?.data);
  });

  it('enqueues a request whose API died between its submit script and the BullMQ add', async () => {
    const request = params({ useCache: false });
    await store.submit(request);
    const queue = store.queue('m', 1);
    // The entry stays until a worker claims the request (one write less per submit).
    expect(await redis.zscore(store.keys.unqueued, request.id)).toBe(String(request.now));
    // Reproduce the crash window: the record is written and marked unqueued, but no job exists.
    await queue.remove(request.id);
    await redis.zadd(store.keys.unqueued, request.now, request.id);
    expect(await queue.getJob(request.id)).toBeUndefined();

    expect(await store.requeueOrphans(request.now + 5_000, 10_000)).toBe(0);
    expect(await store.requeueOrphans(request.now + 10_000, 10_000)).toBe(1);
    expect((await queue.getJob(request.id))?.data).toEqual({ id: request.id });
    expect(await redis.zcard(store.keys.unqueued)).toBe(0);
    // A second sweep finds nothing left to do.
    expect(await store.requeueOrphans(request.now + 20_000, 10_000)).toBe(0);
  });

  it('drops an unqueued entry whose request already ended instead of enqueueing it', async () => {
    const request = params({ useCache: false });
    await store.submit(request);
    await store.cancel(request.id, Date.now());
    await redis.zadd(store.keys.unqueued, request.now, request.id);
    expect(await store.requeueOrphans(request.now + 60_000, 10_000)).toBe(0);
    expect(await redis.zcard(store.keys.unqueued)).toBe(0);
  });

  it('removes a request from the unqueued set when a worker claims it', async () => {
    const request = params({ useCache: false });
    await store.submit(request);
    await redis.zadd(store.keys.unqueued, request.now, request.id);
    await store.claim([request.id], Date.now());
    expect(await redis.zscore(store.keys.unqueued, request.id)).toBeNull();
  });

  it('counts live workers from heartbeats', async () => {
    const now = Date.now();
    await store.heartbeat(['m'], 'w1', now);
    expect(await store.liveWorkers('m', now)).toBe(1);
    expect(await store.liveWorkers('m', now + 60_000)).toBe(0);
    await store.leave(['m'], 'w1');
    expect(await store.liveWorkers('m', now)).toBe(0);
  });
});
