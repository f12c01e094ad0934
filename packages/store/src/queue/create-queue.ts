import { BullmqQueue } from '../bullmq/bullmq-queue.ts';
import type { RedisConnection } from '../connection.ts';
import type { RequestStore } from '../request-store.ts';
import { StreamsQueue } from '../streams/streams-queue.ts';
import type { InferenceQueue, QueueBackendName, QueueLogger } from './queue.ts';

export interface CreateQueueOptions {
  backend: QueueBackendName;
  store: RequestStore;
  /** JOB_ATTEMPTS: runs per request. */
  jobAttempts: number;
  /** Opens a connection of the worker role, for processes that take from queues. */
  connect?: () => RedisConnection;
  /**
   * Whether this process sweeps the bullmq outbox (long-running APIs and workers do; one-shot tools
   * do not).
   */
  sweepOutbox?: boolean;
  logger?: QueueLogger;
}

/** How often a process sweeps the bullmq outbox. */
const OUTBOX_SWEEP_MS = 1_000;

/** The deployment's queue for QUEUE_BACKEND. */
export function createQueue(options: CreateQueueOptions): InferenceQueue {
  const { store, connect, logger } = options;
  switch (options.backend) {
    case 'streams':
      return new StreamsQueue({ store, ...(connect ? { connect } : {}) });
    case 'bullmq':
      return new BullmqQueue({
        store,
        jobAttempts: options.jobAttempts,
        ...(connect ? { connect } : {}),
        ...(options.sweepOutbox ? { sweepOutboxMs: OUTBOX_SWEEP_MS } : {}),
        ...(logger ? { logger } : {}),
      });
    default: {
      const unreachable: never = options.backend;
      throw new Error(`unknown queue backend ${String(unreachable)}`);
    }
  }
}
