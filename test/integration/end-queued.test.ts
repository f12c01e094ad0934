/**
 * What a worker does with the requests of a version nobody will serve (docs/models.md, "Hot
 * reload"): every one ends `failed` with the given code, wherever it waited: new in the stream,
 * taken by a consumer that is gone, due for a retry later, or coalesced onto one of those.
 */
import { randomBytes } from 'node:crypto';
import { cacheKey, encodePayload, newRequestId, type TensorMap } from '@inferq/protocol';
import {
  closeConnection,
  createRedisConnection,
  QueueConsumer,
  RequestStore,
  StreamQueueAdmin,
  StreamsQueue,
  type SubmitParams,
} from '@inferq/store';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';

type Redis = ReturnType<typeof createRedisConnection>;

let redis: Redis;
let blocking: Redis;
let store: RequestStore;
let queue: StreamsQueue;

function params(x: number): SubmitParams {
  const inputs: TensorMap = { x: { dtype: 'float32', shape: [1, 1], data: new Float32Array([x]) } };
  return {
    id: newRequestId(),
    model: 'm',
    version: 3,
    tenant: 'public',
    cacheKey: cacheKey({ model: 'm', version: 3, inputs }),
    useCache: true,
    cacheTtlSeconds: 60,
    payload: encodePayload({ inputs }),
    now: Date.now(),
  };
}

beforeEach(() => {
  const prefix = `{t-${randomBytes(4).toString('hex')}}`;
  redis = createRedisConnection(inject('redisUrl'), 'worker');
  blocking = createRedisConnection(inject('redisUrl'), 'worker');
  store = new RequestStore({ redis, prefix, resultTtlSeconds: 60 });
  queue = new StreamsQueue({ store, connect: () => createRedisConnection(inject('redisUrl'), 'worker') });
});

afterEach(async () => {
  await closeConnection(blocking);
  await closeConnection(redis);
});

describe('failWaiting', () => {
  it('ends every request waiting for a model version failed with the code, and leaves the queue empty', async () => {
    const waiting = [params(1), params(2), params(3)];
    for (const p of waiting) expect(await store.submit(p)).toEqual({ kind: 'queued' });
    const follower = { ...params(1), id: newRequestId() };
    expect(await store.submit(follower)).toEqual({ kind: 'coalesced', leaderId: waiting[0]!.id });
    // Taken by a worker that then died (their entries stay pending under its name), and one that
    // ran, failed and waits for its retry, due in an hour.
    const gone = new QueueConsumer({ blocking, queue: store.queueKeys('m', 3), consumer: 'gone' });
    await gone.ensureGroups();
    const [taken] = await gone.read(1, 1);
    const later = params(4);
    await store.submit(later);
    const [retried] = (await gone.read(5, 1)).filter((d) => d.id === later.id);
    await store.start([retried!], Date.now(), new Set([later.id]));
    await store.retryLater([{ ref: retried!, due: Date.now() + 3_600_000 }]);

    const error = { code: 'model_version_retired', message: 'version 3 of model m was removed' };
    const ended = await queue.failWaiting('m', 3, error, 'me');
    // Entries: the three leaders (pending under the dead consumer) and the retry, enqueued again.
    expect(ended).toBe(4);
    for (const id of [...waiting.map((p) => p.id), follower.id, later.id, taken!.id]) {
      expect(await store.get(id)).toMatchObject({ status: 'failed', error });
    }
    expect(await new StreamQueueAdmin(store).queueCounts('m', 3)).toEqual({
      waiting: 0,
      taken: 0,
      held: 0,
      delayed: 0,
    });
    expect(await queue.failWaiting('m', 3, error, 'me')).toBe(0);
  });
});
