import type { RequestError } from '@inferq/protocol';
import type { QueueConsumer } from '../queue-consumer.ts';
import type { RequestStore } from '../request-store.ts';
import { StreamQueueAdmin } from './stream-admin.ts';

export interface FailWaitingOptions {
  store: RequestStore;
  consumer: QueueConsumer;
  model: string;
  version: number;
  error: RequestError;
}

/** Entries taken per read while ending a queue. */
const READ_COUNT = 100;
/** Reads never block: the queue is ended as it stands. */
const NO_WAIT_MS = 1;

/**
 * Ends every request waiting in one model version's streams `failed` with `error`: new entries,
 * entries other consumers hold (only called when no live worker serves the version) and retries not
 * yet due. Requests held by `inferq queue pause` stay held (the operator's choice). Returns how many.
 */
export async function failWaitingInStreams(options: FailWaitingOptions): Promise<number> {
  const { store, consumer, model, version, error } = options;
  await consumer.ensureGroups();
  const admin = new StreamQueueAdmin(store);
  while ((await admin.promoteDue(model, version, Number.MAX_SAFE_INTEGER)) > 0) {
    // every retry becomes due now
  }
  let ended = 0;
  for (;;) {
    const deliveries = [
      ...(await consumer.reclaim(0, READ_COUNT)),
      ...(await consumer.read(READ_COUNT, NO_WAIT_MS)),
    ];
    if (deliveries.length === 0) return ended;
    const now = Date.now();
    await store.complete(
      deliveries.map((delivery) => ({
        id: delivery.id,
        model,
        version,
        createdAt: delivery.createdAt,
        queueEntry: { stream: delivery.stream, entry: delivery.entry },
        status: 'failed' as const,
        error,
        timings: { queueMs: Math.max(0, now - delivery.createdAt), batchWaitMs: 0, inferMs: 0 },
        batchSize: 0,
        now,
      })),
    );
    ended += deliveries.length;
  }
}
