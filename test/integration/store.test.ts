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
import {
  CONSUMER_GROUP,
  closeConnection,
  createRedisConnection,
  FleetRegistry,
  INLINE_PAYLOAD_BYTES,
  keysFor,
  MAX_STALLS,
  QueueConsumer,
  RequestStore,
  StreamQueueAdmin,
  type SubmitParams,
  type WorkerReport,
} from '@inferq/store';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { startAsWorker } from '../helpers/queue.ts';

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
  for (const c of consumers.splice(0)) await closeConnection(c);
  await redis.quit();
  await subscriber.quit();
});

const consumers: Redis[] = [];

/** A worker's view of model m v1's queue, on a blocking connection of its own. */
async function consumer(name: string): Promise<QueueConsumer> {
  const blocking = createRedisConnection(inject('redisUrl'), 'worker');
  consumers.push(blocking);
  const queue = new QueueConsumer({ blocking, queue: store.queueKeys('m', 1), consumer: name });
  await queue.ensureGroups();
  return queue;
}

describe('RequestStore', () => {
  it('enqueues a new request, coalesces an identical one and serves the third from the cache', async () => {
    const leader = params();
    expect(await store.submit(leader)).toEqual({ kind: 'queued' });
    expect(await new StreamQueueAdmin(store).queueCounts('m', 1)).toEqual({
      waiting: 1,
      taken: 0,
      held: 0,
      delayed: 0,
    });

    const follower = params();
    expect(await store.submit(follower)).toEqual({ kind: 'coalesced', leaderId: leader.id });
    expect(await new StreamQueueAdmin(store).entriesAdded('m', 1)).toBe(1);
    expect((await store.get(follower.id))?.status).toBe('queued');

    const claims = await startAsWorker(store, [leader.id], Date.now());
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
    // Only the leader ever reached the queue, and its entry left it with its completion.
    expect(await new StreamQueueAdmin(store).entriesAdded('m', 1)).toBe(1);
    expect(await new StreamQueueAdmin(store).queueCounts('m', 1)).toEqual({
      waiting: 0,
      taken: 0,
      held: 0,
      delayed: 0,
    });
  });

  it('does not use the cache or coalesce when the request opts out', async () => {
    const a = params({ useCache: false });
    const b = params({ useCache: false });
    expect(await store.submit(a)).toEqual({ kind: 'queued' });
    expect(await store.submit(b)).toEqual({ kind: 'queued' });
    expect((await new StreamQueueAdmin(store).queueCounts('m', 1)).waiting).toBe(2);
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
    await startAsWorker(store, [leader.id], Date.now());
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
    await startAsWorker(store, [request.id], Date.now());
    await completeSucceeded(request.id, request.now);
    expect(decodeCompletionMessage(await got)).toMatchObject({ id: request.id, status: 'succeeded' });
  });

  it('cancels a queued request once, refuses a second time, and a worker that took it drops it', async () => {
    const request = params();
    await store.submit(request);
    const [entry] = await store.redis.hmget(store.keys.request(request.id), 'entry');
    expect(await store.cancel(request.id, Date.now())).toBe('cancelled');
    // It left its queue with the cancel: no worker takes it any more.
    expect(await store.redis.xrange(store.queueKeys('m', 1).normal, entry!, entry!)).toEqual([]);
    expect(await store.cancel(request.id, Date.now())).toBe('conflict');
    expect(await store.cancel('nope', Date.now())).toBe('missing');
    expect(await startAsWorker(store, [request.id], Date.now())).toEqual([
      { id: request.id, state: 'dropped', reason: 'cancelled' },
    ]);
    expect((await store.get(request.id))?.status).toBe('cancelled');
    // The in-flight key is released: the same input is a new leader, not a follower of a dead request.
    expect(await store.submit(params())).toEqual({ kind: 'queued' });
  });

  it('refuses to cancel a running request', async () => {
    const request = params();
    await store.submit(request);
    await startAsWorker(store, [request.id], Date.now());
    expect(await store.cancel(request.id, Date.now())).toBe('conflict');
  });

  it('expires a request past its deadline when a worker starts it, before inference', async () => {
    const now = Date.now();
    const request = params({ deadline: now + 10, now });
    await store.submit(request);
    expect(await startAsWorker(store, [request.id], now + 11)).toEqual([
      { id: request.id, state: 'dropped', reason: 'expired' },
    ]);
    const record = await store.get(request.id);
    expect(record?.status).toBe('expired');
    expect(record?.error?.code).toBe('expired');
  });

  it('is idempotent when a re-run completes a request twice', async () => {
    const request = params();
    await store.submit(request);
    await startAsWorker(store, [request.id], Date.now());
    await completeSucceeded(request.id, request.now);
    const first = await store.get(request.id);
    await completeSucceeded(request.id, request.now + 100);
    expect(await store.get(request.id)).toEqual(first);
  });

  it('keeps the payload bytes exactly as submitted', async () => {
    const request = params();
    await store.submit(request);
    const [claim] = await startAsWorker(store, [request.id], Date.now());
    if (claim?.state !== 'run') throw new Error('expected a runnable claim');
    expect(Buffer.from(claim.payload).equals(Buffer.from(request.payload))).toBe(true);
    expect(decodeTensorMap(encodeTensorMap(inputs)).x?.data).toEqual(inputs.x?.data);
  });

  it("keeps the live workers' reports, forgets long-dead ones and removes a leaving one", async () => {
    const fleet = new FleetRegistry({ redis, prefix, livenessMs: 10_000 });
    const now = Date.now();
    const report = (id: string, heartbeatAt: number): WorkerReport => ({
      id,
      host: 'h',
      pid: 1,
      heartbeatAt,
      versions: [{ model: 'm', version: 1, state: 'ready', provider: 'cpu' }],
    });
    await fleet.report(report('w1', now));
    await fleet.report(report('w2', now - 20_000));
    await fleet.report(report('w3', now - 61_000));
    expect(await fleet.live(now)).toEqual([report('w1', now)]);
    // w2 is past its liveness window but kept a while; w3 (six windows old) was removed.
    expect(Object.keys(await redis.hgetall(keysFor(prefix).fleet)).sort()).toEqual(['w1', 'w2']);
    await fleet.leave('w1');
    expect(await fleet.live(now)).toEqual([]);
  });
});

describe('the queue (streams read through a consumer group)', () => {
  it('delivers a request once, with its small payload inside the entry, and keeps it pending until it ends', async () => {
    const worker = await consumer('w1');
    const request = params({ useCache: false });
    await store.submit(request);
    const [delivery] = await worker.read(10, 100);
    expect(delivery).toMatchObject({
      id: request.id,
      stream: store.queueKeys('m', 1).normal,
      createdAt: request.now,
      attempts: 0,
      redelivered: false,
    });
    expect(Buffer.from(delivery!.payload!).equals(Buffer.from(request.payload))).toBe(true);
    // Nobody else gets it, and it counts as taken until its end acknowledges it.
    expect(await (await consumer('w2')).read(10, 50)).toEqual([]);
    expect(await new StreamQueueAdmin(store).queueCounts('m', 1)).toEqual({
      waiting: 0,
      taken: 1,
      held: 0,
      delayed: 0,
    });
    await completeSucceeded(request.id, request.now);
    expect(await new StreamQueueAdmin(store).queueCounts('m', 1)).toEqual({
      waiting: 0,
      taken: 0,
      held: 0,
      delayed: 0,
    });
    expect(await store.redis.xlen(delivery!.stream)).toBe(0);
  });

  it('keeps a payload larger than an entry should carry under a key of its own, read at start', async () => {
    const worker = await consumer('w1');
    const big: TensorMap = {
      x: {
        dtype: 'uint8',
        shape: [1, INLINE_PAYLOAD_BYTES],
        data: new Uint8Array(INLINE_PAYLOAD_BYTES).fill(7),
      },
    };
    const request = params({ useCache: false, payload: encodePayload({ inputs: big }) });
    await store.submit(request);
    const [delivery] = await worker.read(10, 100);
    expect(delivery?.payload).toBeUndefined();
    const [started] = await store.start([delivery!], Date.now(), new Set([request.id]));
    expect(started?.state).toBe('run');
    if (started?.state !== 'run') throw new Error('unreachable');
    expect(Buffer.from(started.payload!).equals(Buffer.from(request.payload))).toBe(true);
    await completeSucceeded(request.id, request.now);
    // The payload key goes with the request's end.
    expect(await store.redis.exists(store.keys.payload(request.id))).toBe(0);
  });

  it('serves requests without a priority before those with one, whatever their order of arrival', async () => {
    const worker = await consumer('w1');
    const background = params({ useCache: false, priority: 5 });
    const normal = params({ useCache: false });
    await store.submit(background);
    await store.submit(normal);
    // A backlog read (the first one counts as one) takes the normal band alone.
    expect((await worker.read(1, 100)).map((d) => d.id)).toEqual([normal.id]);
    expect((await worker.read(1, 100)).map((d) => [d.id, d.stream])).toEqual([
      [background.id, store.queueKeys('m', 1).background],
    ]);
  });

  it('lets another worker reclaim what a worker held once its lease lapses, and renewal prevents that', async () => {
    const first = await consumer('w1');
    const second = await consumer('w2');
    const renewed = params({ useCache: false });
    const abandoned = params({
      useCache: false,
      payload: encodePayload({
        inputs: { x: { dtype: 'float32', shape: [1, 4], data: new Float32Array([9, 9, 9, 9]) } },
      }),
    });
    await store.submit(renewed);
    await store.submit(abandoned);
    const held = await first.read(10, 100);
    expect(held.map((d) => d.id)).toEqual([renewed.id, abandoned.id]);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(await new StreamQueueAdmin(store).renewLeases(held[0]!.stream, 'w1', [held[0]!.entry])).toEqual(
      [],
    );
    const reclaimed = await second.reclaim(50, 10);
    expect(reclaimed.map((d) => [d.id, d.redelivered])).toEqual([[abandoned.id, true]]);
    expect(Buffer.from(reclaimed[0]!.payload!).equals(Buffer.from(abandoned.payload))).toBe(true);
    // The first worker, renewing late, learns that it no longer holds it.
    expect(await new StreamQueueAdmin(store).renewLeases(held[1]!.stream, 'w1', [held[1]!.entry])).toEqual([
      held[1]!.entry,
    ]);
  });

  it('restarts a request found running after a reclaim at most MAX_STALLS times, then answers lost', async () => {
    const request = params({ useCache: false });
    await store.submit(request);
    let delivery = (await (await consumer('w0')).read(1, 100))[0]!;
    expect((await store.start([delivery], Date.now()))[0]?.state).toBe('run');
    for (let stall = 1; stall <= MAX_STALLS + 1; stall++) {
      await new Promise((resolve) => setTimeout(resolve, 30));
      delivery = (await (await consumer(`w${stall}`)).reclaim(20, 1))[0]!;
      expect(delivery.redelivered).toBe(true);
      const [outcome] = await store.start([delivery], Date.now());
      expect(outcome?.state).toBe(stall <= MAX_STALLS ? 'run' : 'lost');
    }
  });

  it('puts a failed request back after its backoff, payload and attempt count with it', async () => {
    const worker = await consumer('w1');
    const request = params({ useCache: false });
    await store.submit(request);
    const [delivery] = await worker.read(1, 100);
    await store.start([delivery!], Date.now());
    const now = Date.now();
    await store.retryLater([{ ref: delivery!, due: now + 50, payload: delivery!.payload! }]);
    expect(await new StreamQueueAdmin(store).queueCounts('m', 1)).toEqual({
      waiting: 0,
      taken: 0,
      held: 0,
      delayed: 1,
    });
    expect((await store.get(request.id))?.status).toBe('running');
    expect(await new StreamQueueAdmin(store).promoteDue('m', 1, now + 10)).toBe(0);
    expect(await new StreamQueueAdmin(store).promoteDue('m', 1, now + 50)).toBe(1);
    const [again] = await worker.read(1, 100);
    expect(again).toMatchObject({ id: request.id, attempts: 1, redelivered: false });
    expect(again?.payload).toBeUndefined();
    const [restarted] = await store.start([again!], Date.now(), new Set([request.id]));
    expect(restarted?.state).toBe('run');
    if (restarted?.state !== 'run') throw new Error('unreachable');
    expect(Buffer.from(restarted.payload!).equals(Buffer.from(request.payload))).toBe(true);
  });

  it('holds new requests while paused and enqueues them, in order, on resume; a held one can be cancelled', async () => {
    const worker = await consumer('w1');
    await new StreamQueueAdmin(store).pause('m', 1);
    const held = [params({ useCache: false }), params({ useCache: false }), params({ useCache: false })];
    for (const p of held) expect(await store.submit(p)).toEqual({ kind: 'queued' });
    expect(await new StreamQueueAdmin(store).queueCounts('m', 1)).toEqual({
      waiting: 0,
      taken: 0,
      held: 3,
      delayed: 0,
    });
    expect(await worker.read(10, 50)).toEqual([]);
    expect(await store.cancel(held[1]!.id, Date.now())).toBe('cancelled');
    expect(await new StreamQueueAdmin(store).resume('m', 1)).toBe(2);
    const delivered = await worker.read(10, 100);
    expect(delivered.map((d) => d.id)).toEqual([held[0]!.id, held[2]!.id]);
    // Held payloads wait under their keys; the worker reads them at start.
    expect(delivered.every((d) => d.payload === undefined)).toBe(true);
  });

  it('gives an unstarted request back to its stream for any worker to take, counting nothing', async () => {
    const stopping = await consumer('w1');
    const request = params({ useCache: false });
    await store.submit(request);
    const [delivery] = await stopping.read(1, 100);
    expect(
      await new StreamQueueAdmin(store).handBack([{ ref: delivery!, payload: delivery!.payload! }]),
    ).toBe(1);
    const [taken] = await (await consumer('w2')).read(1, 100);
    expect(taken).toMatchObject({ id: request.id, attempts: 0, redelivered: false });
    expect(taken?.entry).not.toBe(delivery?.entry);
    const pending = (await store.redis.xpending(taken!.stream, CONSUMER_GROUP)) as [number];
    expect(pending[0]).toBe(1);
  });

  it('announces the end on the notify channel the record names', async () => {
    const request = params({ useCache: false, notify: 'api-7' });
    await store.submit(request);
    const got = new Promise<Buffer>((resolve) =>
      subscriber.on('messageBuffer', (_c: Buffer, m: Buffer) => resolve(m)),
    );
    await subscriber.subscribe(store.keys.notifyChannel('api-7'));
    await completeSucceeded(request.id, request.now);
    expect(decodeCompletionMessage(await got)).toMatchObject({ id: request.id, status: 'succeeded' });
  });
});
