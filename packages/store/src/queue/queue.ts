/**
 * The one queue interface. The API submits through `InferenceQueue`, the CLI administers queues
 * through it, and a worker takes and settles requests through the `QueueIntake` it opens per model
 * version. Two backends implement it (QUEUE_BACKEND): `streams`, inferq's own queue on Redis streams
 * (packages/store/src/streams), and `bullmq`. Everything else about a request (its record, the cache,
 * coalescing, deadlines, webhooks) is the same Redis data for both, kept by `RequestStore`.
 */
import type { RequestError } from '@inferq/protocol';
import type {
  Completion,
  Delivery,
  QueueCounts,
  QueueEntryRef,
  StartOutcome,
  SubmitOutcome,
  SubmitParams,
} from '../types.ts';

/** QUEUE_BACKEND's values (packages/config validates them). */
export type QueueBackendName = 'streams' | 'bullmq';

/** What a queue logs: a subset of pino's interface, so the store needs no logging library. */
export interface QueueLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** A deployment's queues: one per model version, all of one backend. */
export interface InferenceQueue {
  readonly backend: QueueBackendName;
  /**
   * Accepts and enqueues one request in one step: admission (idempotency, rate, depth), a cache hit,
   * coalescing onto an identical request in flight, or a new record whose request waits for a worker.
   */
  submit(params: SubmitParams): Promise<SubmitOutcome>;
  /** Many requests of one model version (infer:bulk), in order; outcomes in the order of `params`. */
  submitBulk(params: SubmitParams[]): Promise<SubmitOutcome[]>;
  /** New requests of the version wait without reaching workers until `resume`. */
  pause(model: string, version: number): Promise<void>;
  /** Lifts `pause`; returns how many held requests it let through (where the backend counts them). */
  resume(model: string, version: number): Promise<number>;
  isPaused(model: string, version: number): Promise<boolean>;
  counts(model: string, version: number): Promise<QueueCounts>;
  /** Requests of a version waiting or running: what autoscaling and `inferq_queue_depth` read. */
  depth(model: string, version: number): Promise<number>;
  /** The versions of `model` that have a queue in Redis (a worker or a request created it). */
  versions(model: string): Promise<number[]>;
  /** The worker's side of one model version's queue. */
  openIntake(options: IntakeOptions): Promise<QueueIntake>;
  /**
   * Ends every request waiting in a version's queue (new, held by another worker, waiting for a
   * retry) `failed` with `error`: only called when no live worker serves the version. Returns how many.
   */
  failWaiting(model: string, version: number, error: RequestError, consumer: string): Promise<number>;
  close(): Promise<void>;
}

export interface IntakeOptions {
  model: string;
  version: number;
  /** This worker's name, unique per process. */
  consumer: string;
  /** Most requests in hand at once: taken and not yet let go. */
  capacity: number;
  logger: QueueLogger;
  /**
   * Checks a request that reached the queue without the API (a BullMQ job a producer added itself)
   * and prepares it; throws the client error the API would answer. Absent: such jobs fail.
   */
  direct?: (body: Uint8Array) => DirectRequest;
}

/** A request a producer put in the queue directly, checked and prepared by the worker. */
export interface DirectRequest {
  /** MessagePack `{ inputs, outputs? }`, as the API stores it. */
  payload: Uint8Array;
  batchShape?: string;
  timeoutMs?: number;
  metadata?: Record<string, unknown>;
}

/** What an intake tells the worker that opened it. */
export interface IntakeHandler {
  /** Requests taken for this worker (new ones, or ones recovered from a worker that died). */
  deliver(deliveries: Delivery[]): void;
  /** Another worker took over a request this one holds: this worker stalled past its lease. */
  revoked(delivery: Delivery): void;
  /**
   * Awaited after a read that found no backlog, before the next: a worker whose batches end within a
   * millisecond lets their results leave first.
   */
  afterQuietRead?(): Promise<void>;
}

/**
 * One worker's hold on one model version's queue. Each delivered request is in hand (its lease kept
 * alive) until the worker lets it go with `release`, whether it settled it (`complete`, `retryLater`,
 * `handBack`) or not; one let go unsettled comes back to some worker once its lease lapses.
 */
export interface QueueIntake {
  open(handler: IntakeHandler): void;
  /** Marks taken requests running (or answers why not), reading payloads of `readPayloadOf`. */
  start(
    deliveries: readonly Delivery[],
    now: number,
    readPayloadOf?: ReadonlySet<string>,
  ): Promise<StartOutcome[]>;
  /** Writes the ends of requests and settles them in the queue, in one step. */
  complete(completions: readonly Completion[]): Promise<void>;
  /** Requests whose run failed with attempts left run again once `due` (ms since epoch). */
  retryLater(items: readonly { delivery: Delivery; due: number }[]): Promise<void>;
  /** Gives taken, unstarted requests back for any worker, counting no attempt. Returns how many. */
  handBack(deliveries: readonly Delivery[]): Promise<number>;
  /** Takes requests out of this worker's hand (frees room, stops their lease upkeep). */
  release(delivery: Delivery): void;
  /** Stops taking requests; those in hand stay the worker's to settle or release, leases kept alive. */
  close(): Promise<void>;
  /** Once every delivery is released, after `close`: frees the intake's connections. */
  dispose(): Promise<void>;
}

/** The key a delivery is held by: one copy per request and queue entry. */
export function deliveryKey(ref: QueueEntryRef): string {
  return `${ref.id} ${ref.stream} ${ref.entry}`;
}
