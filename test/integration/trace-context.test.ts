/**
 * A request's trace context through the store, and what the store reports as finished, against a
 * real redis-server: the packed W3C context rides on the record and on every queue entry or job made
 * for the request (submit, resume, hand-back, retry; the bullmq outbox), and every script that ends
 * requests reports each one it ended exactly once to `onFinished` (docs/observability.md).
 */
import { randomBytes } from 'node:crypto';
import { cacheKey, encodePayload, encodeTensorMap, newRequestId, type TensorMap } from '@inferq/protocol';
import {
  BullmqQueue,
  closeConnection,
  createRedisConnection,
  type Delivery,
  type FinishedRequest,
  OUTBOX_GRACE_MS,
  QueueConsumer,
  RequestStore,
  StreamQueueAdmin,
  type SubmitParams,
} from '@inferq/store';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { TEST_QUEUE_BACKEND, testQueue } from '../helpers/queue-backend.ts';

const inputs: TensorMap = { x: { dtype: 'float32', shape: [1, 4], data: new Float32Array([1, 2, 3, 4]) } };
const TRACEPARENT = `00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-01`;
const TRACE = `${TRACEPARENT} vendor=1,other=x y`;

let redis: Redis;
let store: RequestStore;
let finished: FinishedRequest[];
const connections: Redis[] = [];

function params(overrides: Partial<SubmitParams> = {}): SubmitParams {
  return {
    id: newRequestId(),
    model: 'm',
    version: 1,
    tenant: 'public',
    cacheKey: cacheKey({ model: 'm', version: 1, inputs }),
    useCache: false,
    cacheTtlSeconds: 60,
    payload: encodePayload({ inputs }),
    now: Date.now(),
    trace: TRACE,
    ...overrides,
  };
}

beforeEach(() => {
  redis = createRedisConnection(inject('redisUrl'), 'worker');
  finished = [];
  store = new RequestStore({
    redis,
    prefix: `{t-${randomBytes(4).toString('hex')}}`,
    resultTtlSeconds: 60,
    onFinished: (requests) => finished.push(...requests),
  });
});

afterEach(async () => {
  for (const c of connections.splice(0)) await closeConnection(c);
  await redis.quit();
});

function connect(): Redis {
  const connection = createRedisConnection(inject('redisUrl'), 'worker');
  connections.push(connection);
  return connection;
}

async function consumer(): Promise<QueueConsumer> {
  const queue = new QueueConsumer({ blocking: connect(), queue: store.queueKeys('m', 1), consumer: 'w1' });
  await queue.ensureGroups();
  return queue;
}

function completion(delivery: Pick<Delivery, 'id' | 'createdAt'>, now: number, batchSize = 2) {
  return {
    id: delivery.id,
    model: 'm',
    version: 1,
    createdAt: delivery.createdAt,
    status: 'succeeded' as const,
    outputs: encodeTensorMap(inputs),
    timings: { queueMs: 1, batchWaitMs: 0, inferMs: 2 },
    batchSize,
    startedAt: now - 2,
    now,
  };
}

describe('the trace context of a request', () => {
  it('is kept on its record and reaches the worker with it', async () => {
    const queue = testQueue(store, { connect });
    const request = params();
    expect(await queue.submit(request)).toEqual({ kind: 'queued' });
    expect((await store.get(request.id))?.trace).toBe(TRACE);
    const intake = await queue.openIntake({
      model: 'm',
      version: 1,
      consumer: 'w1',
      capacity: 4,
      logger: console,
    });
    const delivered = await new Promise<Delivery>((resolve) =>
      intake.open({ deliver: (deliveries) => resolve(deliveries[0]!), revoked: () => undefined }),
    );
    expect(delivered).toMatchObject({ id: request.id, trace: TRACE });
    await intake.start([delivered], Date.now(), new Set([request.id]));
    await intake.complete([{ ...completion(delivered, Date.now()), queueEntry: delivered }]);
    intake.release(delivered);
    await intake.close();
    await intake.dispose();
    await queue.close();
    expect(finished).toMatchObject([{ id: request.id, trace: TRACE, status: 'succeeded', coalesced: false }]);
  });

  it('comes back to a coalesced request as its leader context', async () => {
    const leader = params({ useCache: true });
    await store.submit(leader);
    expect(await store.submit(params({ useCache: true, trace: undefined }))).toEqual({
      kind: 'coalesced',
      leaderId: leader.id,
      leaderTrace: TRACE,
    });
    const withoutTrace = params({ useCache: true, trace: undefined, cacheKey: 'f'.repeat(64) });
    await store.submit(withoutTrace);
    expect(await store.submit(params({ useCache: true, cacheKey: 'f'.repeat(64) }))).toEqual({
      kind: 'coalesced',
      leaderId: withoutTrace.id,
    });
  });

  // Each backend's own paths: registered only in the run of the backend that has them.
  const onStreams = TEST_QUEUE_BACKEND === 'streams' ? it : () => undefined;
  const onBullmq = TEST_QUEUE_BACKEND === 'bullmq' ? it : () => undefined;

  onStreams('rides on every stream entry made for it: resumed, given back, retried', async () => {
    const worker = await consumer();
    const admin = new StreamQueueAdmin(store);
    await admin.pause('m', 1);
    const request = params();
    await store.submit(request);
    await admin.resume('m', 1);
    const [resumed] = await worker.read(1, 100);
    expect(resumed?.trace).toBe(TRACE);
    await admin.handBack([{ ref: resumed! }]);
    const [givenBack] = await worker.read(1, 100);
    expect(givenBack?.trace).toBe(TRACE);
    const now = Date.now();
    await store.start([givenBack!], now, new Set([request.id]));
    await store.retryLater([{ ref: givenBack!, due: now }]);
    expect(await admin.promoteDue('m', 1, now + 1)).toBe(1);
    const [retried] = await worker.read(1, 100);
    expect(retried).toMatchObject({ id: request.id, attempts: 1, trace: TRACE });
    // A request submitted without one carries none.
    const plain = params({ trace: undefined });
    await store.submit(plain);
    const [read] = await worker.read(1, 100);
    expect(read?.id).toBe(plain.id);
    expect(read?.trace).toBeUndefined();
  });

  onBullmq('is in the job the outbox sweep adds for it', async () => {
    const request = params();
    // Accepted, and its API stopped before adding its job.
    await store.submit(request, store.keys.outbox);
    const queue = new BullmqQueue({ store, jobAttempts: 1 });
    try {
      expect(await queue.sweepOutbox(Date.now() + OUTBOX_GRACE_MS + 1)).toBe(1);
      expect((await queue.queueFor('m', 1).getJob(request.id))?.data).toMatchObject({ trace: TRACE });
    } finally {
      await queue.close();
    }
  });
});

describe('onFinished', () => {
  it('hears of a leader and its followers once each, with the batch, the flags and each one context', async () => {
    const worker = await consumer();
    const leader = params({ useCache: true });
    const follower = params({ useCache: true, trace: undefined });
    await store.submit(leader);
    await store.submit(follower);
    const [delivery] = await worker.read(1, 100);
    const now = Date.now();
    await store.start([delivery!], now);
    const ending = { ...completion(delivery!, now + 3), queueEntry: delivery! };
    await store.complete([ending]);
    // Completed again (a batch re-run after a crash): nothing more ended, nothing more reported.
    await store.complete([ending]);
    expect(finished).toEqual([
      {
        id: leader.id,
        model: 'm',
        version: 1,
        status: 'succeeded',
        cached: false,
        coalesced: false,
        timings: { queueMs: expect.any(Number), batchWaitMs: 0, inferMs: 2, totalMs: expect.any(Number) },
        batchSize: 2,
        trace: TRACE,
      },
      {
        id: follower.id,
        model: 'm',
        version: 1,
        status: 'succeeded',
        cached: false,
        coalesced: true,
        timings: expect.any(Object),
        batchSize: 2,
      },
    ]);

    // The same inputs now hit the cache, reported by the submit that answered it.
    const hit = params({ useCache: true });
    expect((await store.submit(hit)).kind).toBe('cached');
    expect(finished[2]).toEqual({
      id: hit.id,
      model: 'm',
      version: 1,
      status: 'succeeded',
      cached: true,
      coalesced: false,
      timings: { queueMs: 0, batchWaitMs: 0, inferMs: 0, totalMs: 0 },
      trace: TRACE,
    });
  });

  it('hears of expiries (at start, by a sweep) and cancels once each', async () => {
    const worker = await consumer();
    const t0 = Date.now();
    const leader = params({ useCache: true, now: t0 });
    const lateFollower = params({ useCache: true, now: t0, deadline: t0 + 25 });
    await store.submit(leader);
    await store.submit(lateFollower);
    const swept = params({ now: t0, deadline: t0 + 10, cacheKey: '' });
    await store.submit(swept);
    const cancelled = params({ now: t0, trace: undefined });
    await store.submit(cancelled);

    expect(await store.cancel(cancelled.id, t0 + 5)).toBe('cancelled');
    expect(await store.cancel(cancelled.id, t0 + 6)).toBe('conflict');
    expect(await store.expireOverdue(t0 + 20)).toEqual([swept.id]);
    const deliveries = await worker.read(10, 100);
    const leaderDelivery = deliveries.find((d) => d.id === leader.id)!;
    // The follower's deadline has passed when its leader starts: the start ends it, the leader runs.
    const outcomes = await store.start([leaderDelivery], t0 + 30);
    expect(outcomes[0]?.state).toBe('run');
    const byId = new Map(finished.map((f) => [f.id, f]));
    expect(finished).toHaveLength(3);
    expect(byId.get(cancelled.id)).toMatchObject({
      status: 'cancelled',
      errorCode: 'cancelled',
      coalesced: false,
      timings: { queueMs: 5, totalMs: 5 },
    });
    expect(byId.get(cancelled.id)?.trace).toBeUndefined();
    expect(byId.get(swept.id)).toMatchObject({
      status: 'expired',
      errorCode: 'expired',
      timings: { queueMs: 20, batchWaitMs: 0, inferMs: 0, totalMs: 20 },
      trace: TRACE,
    });
    expect(byId.get(lateFollower.id)).toMatchObject({
      status: 'expired',
      coalesced: true,
      timings: { queueMs: 30, totalMs: 30 },
      trace: TRACE,
    });
  });
});
