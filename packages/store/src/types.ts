import type { RequestError, RequestRecord, RequestStatus, Timings } from '@inferq/protocol';

/** What the API hands the store for one validated request. */
export interface SubmitParams {
  id: string;
  model: string;
  version: number;
  tenant: string;
  /** Hex SHA-256 cache key (protocol `cacheKey`); empty when `useCache` is false (nothing reads it). */
  cacheKey: string;
  /** Look up and fill the cache, and coalesce with identical in-flight requests. */
  useCache: boolean;
  cacheTtlSeconds: number;
  /** MessagePack bytes of `{ inputs, outputs? }`, read by the worker. */
  payload: Uint8Array;
  /**
   * The request's rows and non-batch dims (protocol `formatBatchShape`): kept on the record and carried
   * by every queue entry of the request, so a worker groups it into a batch without reading the
   * payload. Absent: a worker runs it in a batch of its own.
   */
  batchShape?: string;
  /** `priority > 0` waits in the queue's background band (keys.ts `QueueKeys`); absent or <= 0: normal. */
  priority?: number;
  /** Absolute deadline, ms since epoch; absent: none. */
  deadline?: number;
  callbackChannel?: string;
  callbackUrl?: string;
  metadata?: Record<string, unknown>;
  now: number;
  /**
   * The API process waiting for this request's end (`Prefer: wait`): its completion message also goes
   * to that process's notify channel (`Keys.notifyChannel`), to which it is subscribed for good.
   */
  notify?: string;
  /** Checks the submit script makes before it accepts the request; absent: none. */
  admission?: Admission;
  /**
   * The request's W3C trace context, packed (traceparent, then a space and tracestate when there is
   * one; @inferq/observability `packTraceContext`): kept on its record (`trace`) and carried by every
   * queue entry (`c`) or job made for it, for the worker's spans and the webhook's headers.
   */
  trace?: string;
}

/**
 * Admission control, decided inside the submit script (no extra round trip): an idempotent replay,
 * then the tenant's token bucket, then (only for a request that needs a run of its own, not a cache
 * hit or a coalesced one) the model version's queue depth.
 */
export interface Admission {
  /** Most leaders queued per model version (`queueName`); 0: no limit. */
  maxQueueDepth: number;
  /** The tenant's token bucket; absent: no rate limit. */
  rateLimit?: { perSecond: number; burst: number };
  /**
   * `Idempotency-Key`, scoped to the tenant: within `ttlSeconds` a submission with the same key and
   * fingerprint replays the first one; another fingerprint is rejected.
   */
  idempotency?: { key: string; fingerprint: string; ttlSeconds: number };
  /**
   * The request's deadline as a queue bound (early refusal, `deadlineBound` of @inferq/batcher): it
   * is refused when more than `maxWaitingAhead` requests wait for its model version, unless none
   * waits or the queue is paused. Absent: no such check.
   */
  deadline?: { maxWaitingAhead: number; itemsPerSecond: number };
}

/** Why the submit script refused a request; it wrote nothing. */
export type SubmitRejection =
  | { reason: 'queue-full'; retryAfterSeconds: number; depth: number; maxQueueDepth: number }
  | { reason: 'rate-limited'; retryAfterSeconds: number; perSecond: number; burst: number }
  | { reason: 'idempotency-key-reused'; key: string }
  | {
      reason: 'deadline-unmeetable';
      retryAfterSeconds: number;
      depth: number;
      maxWaitingAhead: number;
    };

export type SubmitOutcome =
  /** Served from the cache: the record is already terminal (`cached: true`). */
  | { kind: 'cached'; record: StoredRecord }
  /** Attached to an in-flight leader with the same cache key (whose trace context is `leaderTrace`). */
  | { kind: 'coalesced'; leaderId: string; leaderTrace?: string }
  /** Enqueued (or held, while its queue is paused). */
  | { kind: 'queued' }
  /** The idempotency key names an earlier request of the tenant with the same fingerprint: its record. */
  | { kind: 'replayed'; record: StoredRecord }
  | { kind: 'rejected'; rejection: SubmitRejection };

/** A record as stored, with the fields only the server sees. */
export interface StoredRecord extends RequestRecord {
  tenant: string;
  /** Its cache key, when it uses the cache (`SubmitParams.useCache`). */
  cacheKey?: string;
  /** `timeoutMs` as an absolute time (ms since epoch): a request still queued then ends `expired`. */
  deadline?: number;
  /** Its packed W3C trace context (`SubmitParams.trace`). */
  trace?: string;
}

/** A request a worker took from its queue (`QueueConsumer`). */
export interface Delivery {
  id: string;
  /** Its queue (`queueName`): on the bullmq backend, where it has no stream. */
  queue?: string;
  /** The stream it came from and its entry there, acknowledged when the request ends or leaves. */
  stream: string;
  entry: string;
  /** When the request was accepted (ms since epoch). */
  createdAt: number;
  /** Its deadline (ms since epoch), when it has one. */
  deadline?: number;
  /** Failed runs before this delivery. */
  attempts: number;
  /** The payload, when small enough to travel inside the entry; absent: `start` reads it from its key. */
  payload?: Buffer;
  /** `SubmitParams.batchShape` of the request, when it was submitted with one. */
  batchShape?: string;
  /** Came back through reclaim: the worker that held it stopped before finishing it. */
  redelivered: boolean;
  /** Runs the queue allows it in all (a BullMQ job's `attempts`); absent: the worker's JOB_ATTEMPTS. */
  maxAttempts?: number;
  /** Its packed W3C trace context (`SubmitParams.trace`), when it carries one. */
  trace?: string;
}

/** What `start` answers for one delivered request. */
export type StartOutcome =
  | { id: string; state: 'run'; createdAt: number; payload?: Buffer }
  /** Restarted more than `maxStalls` times: end it failed (`worker_lost`) instead of running it. */
  | { id: string; state: 'lost' }
  | { id: string; state: 'dropped'; reason: 'cancelled' | 'expired' | 'finished' | 'missing' };

/** Where a request waits and the queue entry a worker holds it by. */
export interface QueueEntryRef {
  id: string;
  /** Its queue (`queueName`); needed where `stream` is "" (a queue without streams: bullmq). */
  queue?: string;
  stream: string;
  /** "" for a request not taken from a stream (a test acting as the worker). */
  entry: string;
}

/** Requests of one model version's queue, by where they are. */
export interface QueueCounts {
  /** In a stream, not yet taken by a worker. */
  waiting: number;
  /** Taken by a worker and not yet acknowledged: running, or formed into a batch about to run. */
  taken: number;
  /** Held while the queue is paused. */
  held: number;
  /** Waiting for a retry after a failed run. */
  delayed: number;
}

/** One finished request, written by the worker. */
export interface Completion {
  id: string;
  model: string;
  version: number;
  /** When the request was submitted (ms since epoch). */
  createdAt: number;
  /** The queue entry the worker holds it by, acknowledged with the completion; absent: none. */
  queueEntry?: { stream: string; entry: string };
  status: Extract<RequestStatus, 'succeeded' | 'failed'>;
  /** MessagePack bytes of the outputs map (protocol `encodeTensorMap`). */
  outputs?: Uint8Array;
  error?: RequestError;
  timings: Omit<Timings, 'totalMs'>;
  batchSize: number;
  /** When its batch started (ms since epoch); absent when it never ran. */
  startedAt?: number;
  now: number;
}

export type CancelOutcome = 'cancelled' | 'conflict' | 'missing';

/**
 * A request a script of this store just ended, reported to `RequestStoreOptions.onFinished` by the
 * process that ran the script: a cache hit (submit), a batch's requests and their followers
 * (complete), requests expired at start, by a sweep or a read, and a cancelled one. Each request
 * ends once, so it is reported once (docs/observability.md, "Tracing and request logs").
 */
export interface FinishedRequest {
  id: string;
  model: string;
  version: number;
  status: Extract<RequestStatus, 'succeeded' | 'failed' | 'cancelled' | 'expired'>;
  /** Answered from the cache at submit. */
  cached: boolean;
  /** Coalesced onto an identical request in flight (a follower): it ended with its leader. */
  coalesced: boolean;
  timings: Omit<Timings, 'steps'>;
  /** Requests in the batch that ran it; absent when it never ran. */
  batchSize?: number;
  /** The error's code, for a request that failed. */
  errorCode?: string;
  /** Its packed W3C trace context, when it carries one. */
  trace?: string;
}
