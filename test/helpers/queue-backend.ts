/**
 * The queue backend a suite runs against: the vitest projects run the integration, end-to-end and
 * fault suites once per backend (vitest.config.ts sets QUEUE_BACKEND), and processes the tests start
 * inherit it. These helpers let a test read the queue the same way on either backend.
 */
import {
  BullmqQueue,
  createQueue,
  type InferenceQueue,
  parseQueueName,
  type QueueEntryRef,
  queueName,
  type RedisConnection,
  type RequestStore,
  StreamQueueAdmin,
} from '@inferq/store';

import { TEST_QUEUE_BACKEND } from './backend.ts';

export { TEST_QUEUE_BACKEND };

/** The suite's queue over `store` (JOB_ATTEMPTS 3 unless given); `connect` for tests that take from it. */
export function testQueue(
  store: RequestStore,
  options: { connect?: () => RedisConnection; jobAttempts?: number } = {},
): InferenceQueue {
  return createQueue({
    backend: TEST_QUEUE_BACKEND,
    store,
    jobAttempts: options.jobAttempts ?? 3,
    ...(options.connect ? { connect: options.connect } : {}),
  });
}

/**
 * How many requests ever reached a model version's queue: the streams' entries-added, or the jobs
 * BullMQ announced as added on its events stream. A cache hit or a coalesced request adds none.
 */
export async function enqueuedCount(store: RequestStore, model: string, version: number): Promise<number> {
  if (TEST_QUEUE_BACKEND === 'streams') return new StreamQueueAdmin(store).entriesAdded(model, version);
  const queue = new BullmqQueue({ store, jobAttempts: 1 });
  try {
    const events = await store.redis.xrange(queue.queueFor(model, version).toKey('events'), '-', '+');
    return events.filter(([, fields]) => fields[0] === 'event' && fields[1] === 'added').length;
  } finally {
    await queue.close();
  }
}

const queues = new WeakMap<RequestStore, InferenceQueue>();

/** The suite's queue over `store`, one per store (pause, resume, counts, depth as a client sees them). */
export function queueOf(store: RequestStore): InferenceQueue {
  let queue = queues.get(store);
  if (queue === undefined) {
    queue = testQueue(store);
    queues.set(store, queue);
  }
  return queue;
}

/**
 * Where a request waits, from its record: its stream and entry (streams), and its queue's name, which
 * a request of the bullmq backend (no stream) is found by.
 */
export async function queueRefOf(
  store: RequestStore,
  id: string,
): Promise<QueueEntryRef & { queue: string }> {
  const [stream, entry, model, version] = await store.redis.hmget(
    store.keys.request(id),
    'q',
    'entry',
    'model',
    'version',
  );
  return { id, stream: stream ?? '', entry: entry ?? '', queue: queueName(model ?? '', Number(version)) };
}

/** Whether the request still waits in its queue: its stream entry, or its BullMQ job. */
export async function waitsInQueue(store: RequestStore, id: string): Promise<boolean> {
  const ref = await queueRefOf(store, id);
  if (TEST_QUEUE_BACKEND === 'streams') {
    if (ref.stream === '' || ref.entry === '') return false;
    return (await store.redis.xrange(ref.stream, ref.entry, ref.entry)).length === 1;
  }
  const { model, version } = parseQueueName(ref.queue);
  const job = await (queueOf(store) as BullmqQueue).queueFor(model, version).getJob(id);
  return job !== undefined && !(await job.isCompleted()) && !(await job.isActive());
}
