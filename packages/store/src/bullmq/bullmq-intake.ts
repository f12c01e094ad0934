import type { RequestError } from '@inferq/protocol';
import { type Job, UnrecoverableError, WaitingError, Worker } from 'bullmq';
import type { RedisConnection } from '../connection.ts';
import { closeConnection } from '../connection.ts';
import { parseQueueName } from '../keys.ts';
import type { DirectRequest, IntakeHandler, QueueIntake, QueueLogger } from '../queue/queue.ts';
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
  /** Checks and prepares a job a producer added itself (IntakeOptions.direct). */
  direct?: (body: Uint8Array) => DirectRequest;
}

/** How a held job is to leave the worker's hand, decided by what the worker did with its request. */
type Settlement =
  | { kind: 'done'; status: string; error?: RequestError }
  | { kind: 'retry'; error: Error }
  /** Back to wait without counting an attempt: handed back, or let go unsettled. */
  | { kind: 'back' };

/** A job's return value, which QueueEvents' `completed` carries: the request's id and end. */
export interface InferJobResult {
  id: string;
  status: string;
}

interface HeldJob {
  job: Job<InferJobData>;
  token: string;
  settlement?: Settlement;
  resolve(value: InferJobResult): void;
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
  /** Jobs started since the last turn of the event loop, delivered together (deliverSoon). */
  private pending: Delivery[] = [];

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

  private async process(job: Job<InferJobData>, token: string | undefined): Promise<InferJobResult> {
    if (this.closing || token === undefined) {
      await job.moveToWait(token);
      throw new WaitingError();
    }
    const delivery = isDirect(job.data) ? await this.adopt(job) : deliveryOf(job);
    return new Promise((resolve, reject) => {
      this.held.set(delivery.id, { job, token, resolve, reject });
      this.deliverSoon(delivery);
    });
  }

  /**
   * BullMQ starts each job's processor on its own; the jobs it fetched in one turn of the event loop
   * reach the batcher as one delivery, so that the batcher sees them together, as a streams read.
   */
  private deliverSoon(delivery: Delivery): void {
    this.pending.push(delivery);
    if (this.pending.length > 1) return;
    setImmediate(() => {
      const deliveries = this.pending;
      this.pending = [];
      this.handler?.deliver(deliveries);
    });
  }

  /**
   * A job a producer added itself (its data an infer request body): checked as the API would, given
   * a record (no cache, no coalescing: docs/api.md), then run like any other. A job that comes back
   * after a stall already has its record. An invalid body fails the job with the API's message.
   */
  private async adopt(job: Job<InferJobData>): Promise<Delivery> {
    const { store, direct } = this.options;
    const id = String(job.id);
    const data = job.data as unknown as DirectJobData;
    const existing = await store.redis.hmget(
      store.keys.request(id),
      'createdAt',
      'deadline',
      'batch',
      'trace',
    );
    if (existing[0] === null) {
      let request: DirectRequest;
      try {
        if (direct === undefined) throw new Error('this worker takes no jobs added outside inferq');
        request = direct(Buffer.from(JSON.stringify(data)));
      } catch (error) {
        throw new UnrecoverableError(error instanceof Error ? error.message : String(error));
      }
      const now = Date.now();
      const { model, version } = parseQueueName(job.queueName);
      await store.submit(
        {
          id,
          model,
          version,
          tenant: typeof data.tenant === 'string' ? data.tenant : 'public',
          cacheKey: '',
          useCache: false,
          cacheTtlSeconds: 0,
          payload: request.payload,
          ...(request.batchShape === undefined ? {} : { batchShape: request.batchShape }),
          ...(request.timeoutMs === undefined ? {} : { deadline: now + request.timeoutMs }),
          ...(request.metadata === undefined ? {} : { metadata: request.metadata }),
          now,
        },
        store.keys.outbox,
      );
      // Already in its queue: nothing for the outbox to add.
      await store.redis.zrem(store.keys.outbox, id);
      existing[0] = String(now);
      existing[1] = request.timeoutMs === undefined ? null : String(now + request.timeoutMs);
      existing[2] = request.batchShape ?? null;
    }
    const delivery: Delivery = {
      id,
      queue: job.queueName,
      stream: '',
      entry: '',
      createdAt: Number(existing[0]),
      attempts: job.attemptsMade,
      redelivered: job.stalledCounter > 0,
    };
    if (existing[1] && Number(existing[1]) > 0) delivery.deadline = Number(existing[1]);
    if (existing[2]) delivery.batchShape = existing[2];
    if (existing[3]) delivery.trace = existing[3];
    if (job.opts.attempts !== undefined) delivery.maxAttempts = job.opts.attempts;
    return delivery;
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
        // A request that failed fails its job too (no retry: its attempts are spent), so BullMQ's
        // tools and a producer's QueueEvents see it.
        if (settlement.status === 'failed') {
          held.reject(new UnrecoverableError(settlement.error?.message ?? 'the request failed'));
        } else {
          held.resolve({ id: delivery.id, status: settlement.status });
        }
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

/** The data of a job a producer added itself: an infer request body (docs/api.md), and a tenant. */
interface DirectJobData {
  inputs: unknown;
  tenant?: unknown;
}

function isDirect(data: unknown): boolean {
  return typeof data === 'object' && data !== null && 'inputs' in data && !('createdAt' in data);
}
