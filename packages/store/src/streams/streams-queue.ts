import type { RequestError } from '@inferq/protocol';
import type { RedisConnection } from '../connection.ts';
import { closeConnection } from '../connection.ts';
import type { InferenceQueue, IntakeOptions, QueueIntake } from '../queue/queue.ts';
import { QueueConsumer } from '../queue-consumer.ts';
import type { RequestStore } from '../request-store.ts';
import type { QueueCounts, SubmitOutcome, SubmitParams } from '../types.ts';
import { failWaitingInStreams } from './fail-waiting.ts';
import { StreamQueueAdmin } from './stream-admin.ts';
import { type LeaseTimings, StreamsIntake } from './streams-intake.ts';

export interface StreamsQueueOptions {
  store: RequestStore;
  /**
   * Opens a connection of the worker role for each intake (its XREADGROUP BLOCK holds it); only
   * workers and tools that take from queues need it.
   */
  connect?: () => RedisConnection;
  leases?: LeaseTimings;
}

/**
 * inferq's own queue: two Redis streams per model version (a normal and a background band) read
 * through one consumer group, whose pending entries are the leases crash recovery reclaims. Submit
 * is the store's script, which enqueues in the same step as it writes the record.
 */
export class StreamsQueue implements InferenceQueue {
  readonly backend = 'streams' as const;
  private readonly options: StreamsQueueOptions;
  private readonly admin: StreamQueueAdmin;

  constructor(options: StreamsQueueOptions) {
    this.options = options;
    this.admin = new StreamQueueAdmin(options.store);
  }

  private get store(): RequestStore {
    return this.options.store;
  }

  submit(params: SubmitParams): Promise<SubmitOutcome> {
    return this.store.submit(params);
  }

  submitBulk(params: SubmitParams[]): Promise<SubmitOutcome[]> {
    return this.store.submitBulk(params);
  }

  pause(model: string, version: number): Promise<void> {
    return this.admin.pause(model, version);
  }

  resume(model: string, version: number): Promise<number> {
    return this.admin.resume(model, version);
  }

  isPaused(model: string, version: number): Promise<boolean> {
    return this.admin.isPaused(model, version);
  }

  counts(model: string, version: number): Promise<QueueCounts> {
    return this.admin.queueCounts(model, version);
  }

  depth(model: string, version: number): Promise<number> {
    return this.admin.queueDepth(model, version);
  }

  versions(model: string): Promise<number[]> {
    return this.admin.queuedVersions(model);
  }

  async openIntake(options: IntakeOptions): Promise<QueueIntake> {
    const { consumer, blocking } = this.consumerFor(options.model, options.version, options.consumer);
    try {
      await consumer.ensureGroups();
    } catch (error) {
      await closeConnection(blocking);
      throw error;
    }
    return new StreamsIntake({
      store: this.store,
      consumer,
      blocking,
      model: options.model,
      version: options.version,
      capacity: options.capacity,
      logger: options.logger,
      ...(this.options.leases ? { leases: this.options.leases } : {}),
    });
  }

  async failWaiting(model: string, version: number, error: RequestError, consumer: string): Promise<number> {
    const taking = this.consumerFor(model, version, consumer);
    try {
      return await failWaitingInStreams({
        store: this.store,
        consumer: taking.consumer,
        model,
        version,
        error,
      });
    } finally {
      await closeConnection(taking.blocking);
    }
  }

  /** Nothing of its own to close: each intake closes its connection. */
  async close(): Promise<void> {}

  private consumerFor(
    model: string,
    version: number,
    consumer: string,
  ): { consumer: QueueConsumer; blocking: RedisConnection } {
    if (this.options.connect === undefined)
      throw new Error('this queue was opened without worker connections');
    const blocking = this.options.connect();
    return {
      blocking,
      consumer: new QueueConsumer({ blocking, queue: this.store.queueKeys(model, version), consumer }),
    };
  }
}
