import { type Job, WaitingError, Worker } from 'bullmq';
import type { RedisConnection } from '../connection.ts';
import { closeConnection } from '../connection.ts';
import type { IntakeHandler, QueueIntake, QueueLogger } from '../queue/queue.ts';
import type { RequestStore } from '../request-store.ts';
import type { Completion, Delivery, StartOutcome } from '../types.ts';
import { deliveryOf, type InferJobData } from './job-data.ts';

/** BullMQ's lock on an active job: renewed every half of it; lapsed, the job is stalled. */
export const BULLMQ_LOCK_MS = 10_000;
/** How often each worker looks for stalled jobs (lock lapsed) and puts them back to wait. */
export const BULLMQ_STALLED_CHECK_MS = 2_000;
/**
 * inferq's start script counts the restarts of a request whose worker died and ends it `worker_lost`
 * past MAX_STALLS; BullMQ must never fail such a job on its own first (it would do so without running
 * the processor, leaving the record unended).
 */
const BULLMQ_MAX_STALLED_COUNT = 1_000;

export interface BullmqIntakeOptions {
  store: RequestStore;
  /** The model version's BullMQ queue name (`queueName`). */
  queueName: string;
  /** A connection of its own for the BullMQ worker (it duplicates it for its blocking reads). */
  connection: RedisConnection;
  model: string;
  capacity: number;
  logger: QueueLogger;
}

/** How a held job is to leave the worker's hand, decided by what the worker did with its request. */
type Settlement =
  | { kind: 'done'; status: string }
  | { kind: 'retry'; error: Error }
  /** Back to wait without counting an attempt: handed back, or let go unsettled. */
  | { kind: 'back' };

interface HeldJob {
  job: Job<InferJobData>;
  token: string;
  settlement?: Settlement;
  resolve(value: { status: string }): void;
  reject(error: Error): void;
}

/**
 * A worker's hold on one model version's BullMQ queue: a BullMQ `Worker` with a concurrency of the
 * intake's capacity, whose processor hands each job to inferq's batcher and resolves once the
 * worker has settled it. BullMQ keeps the job locked (renewed) meanwhile, and its stalled-job check
 * stands in for lease reclaim; attempts and backoff are BullMQ's own (a failed run rejects the job).
 */
export class BullmqIntake implements QueueIntake {
  private readonly options: BullmqIntakeOptions;
  /** Request (job) id -> the job in hand. */
  private readonly held = new Map<string, HeldJob>();
  private worker: Worker<InferJobData> | undefined;
  private handler: IntakeHandler | undefined;
  private closing = false;
  private closed: Promise<void> | undefined;

  constructor(options: BullmqIntakeOptions) {
    this.options = options;
  }

  open(handler: IntakeHandler): void {
    this.handler = handler;
    const { store, logger } = this.options;
    const worker = new Worker<InferJobData>(
      this.options.queueName,
      (job, token) => this.process(job, token),
      {
        connection: this.options.connection,
        prefix: store.keys.bullPrefix,
        concurrency: this.options.capacity,
        lockDuration: BULLMQ_LOCK_MS,
        stalledInterval: BULLMQ_STALLED_CHECK_MS,
        maxStalledCount: BULLMQ_MAX_STALLED_COUNT,
        removeOnComplete: { count: 0 },
        removeOnFail: { count: 0 },
      },
    );
    // Without a listener an 'error' event would end the process.
    worker.on('error', (error) =>
      logger.warn({ err: error, model: this.options.model }, 'BullMQ worker error'),
    );
    worker.on('lockRenewalFailed', (jobIds: string[]) => {
      for (const jobId of jobIds) {
        const held = this.held.get(jobId);
        if (held === undefined) continue;
        logger.warn({ id: jobId, model: this.options.model }, 'lost the lock of a job this worker held');
        this.handler?.revoked(deliveryOf(held.job));
      }
    });
    this.worker = worker;
  }

  private async process(job: Job<InferJobData>, token: string | undefined): Promise<{ status: string }> {
    if (this.closing || token === undefined) {
      await job.moveToWait(token);
      throw new WaitingError();
    }
    const delivery = deliveryOf(job);
    return new Promise((resolve, reject) => {
      this.held.set(delivery.id, { job, token, resolve, reject });
      this.handler?.deliver([delivery]);
    });
  }

  async start(
    deliveries: readonly Delivery[],
    now: number,
    readPayloadOf?: ReadonlySet<string>,
  ): Promise<StartOutcome[]> {
    const outcomes = await this.options.store.start(deliveries, now, readPayloadOf);
    // Dropped (cancelled, expired, finished, gone): the job has nothing left to do.
    for (const outcome of outcomes) {
      if (outcome.state === 'dropped') this.settle(outcome.id, { kind: 'done', status: outcome.reason });
    }
    return outcomes;
  }

  async complete(completions: readonly Completion[]): Promise<void> {
    await this.options.store.complete(completions);
    for (const completion of completions)
      this.settle(completion.id, { kind: 'done', status: completion.status });
  }

  async retryLater(items: readonly { delivery: Delivery; due: number }[]): Promise<void> {
    if (items.length === 0) return;
    // The record waits for its next run (`retry` mark); BullMQ's backoff decides when.
    await this.options.store.retryLater(items.map(({ delivery, due }) => ({ ref: delivery, due })));
    for (const { delivery } of items) {
      this.settle(delivery.id, { kind: 'retry', error: new Error('the run failed; retrying') });
    }
  }

  async handBack(deliveries: readonly Delivery[]): Promise<number> {
    for (const delivery of deliveries) this.settle(delivery.id, { kind: 'back' });
    return deliveries.length;
  }

  release(delivery: Delivery): void {
    const held = this.held.get(delivery.id);
    if (held === undefined) return;
    this.held.delete(delivery.id);
    const settlement = held.settlement ?? { kind: 'back' };
    switch (settlement.kind) {
      case 'done':
        held.resolve({ status: settlement.status });
        return;
      case 'retry':
        held.reject(settlement.error);
        return;
      case 'back':
        // Failing that (Redis away, or the lock lost), the lock lapses and the stalled check returns it.
        held.job.moveToWait(held.token).then(
          () => held.reject(new WaitingError()),
          (error: unknown) => held.reject(error instanceof Error ? error : new Error(String(error))),
        );
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    // Waits for the jobs in hand, which the worker settles after this: awaited by dispose.
    this.closed = this.worker?.close();
    this.closed?.catch(() => undefined);
  }

  async dispose(): Promise<void> {
    await this.closed?.catch((error: unknown) =>
      this.options.logger.warn({ err: error }, 'closing the BullMQ worker failed'),
    );
    await closeConnection(this.options.connection);
  }

  private settle(id: string, settlement: Settlement): void {
    const held = this.held.get(id);
    if (held !== undefined) held.settlement = settlement;
  }
}
