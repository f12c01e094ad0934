import type { RequestError, RequestRecord, RequestStatus, Timings } from '@inferq/protocol';

/** What the API hands the store for one validated request. */
export interface SubmitParams {
  id: string;
  model: string;
  version: number;
  /** BullMQ queue that serves this model version (see `queueName`). */
  tenant: string;
  /** Hex SHA-256 cache key (protocol `cacheKey`). */
  cacheKey: string;
  /** Look up and fill the cache, and coalesce with identical in-flight requests. */
  useCache: boolean;
  cacheTtlSeconds: number;
  /** MessagePack bytes of `{ inputs, outputs? }`, read by the worker. */
  payload: Uint8Array;
  priority?: number;
  /** Absolute deadline, ms since epoch; absent: none. */
  deadline?: number;
  callbackChannel?: string;
  callbackUrl?: string;
  metadata?: Record<string, unknown>;
  now: number;
  /**
   * Settled before the job is enqueued, e.g. the caller's completion subscription: once the job
   * exists a worker may finish it at any moment, and a subscription made later would miss that.
   */
  beforeEnqueue?: Promise<unknown>;
  /** Write the record but leave the job to the caller (`submitBulk` adds one job for many). */
  deferEnqueue?: boolean;
  /** Checks the submit script makes before it accepts the request; absent: none. */
  admission?: Admission;
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
}

/** Why the submit script refused a request; it wrote nothing. */
export type SubmitRejection =
  | { reason: 'queue-full'; retryAfterSeconds: number; depth: number; maxQueueDepth: number }
  | { reason: 'rate-limited'; retryAfterSeconds: number; perSecond: number; burst: number }
  | { reason: 'idempotency-key-reused'; key: string };

export type SubmitOutcome =
  /** Served from the cache: the record is already terminal (`cached: true`). */
  | { kind: 'cached'; record: StoredRecord }
  /** Attached to an in-flight leader with the same cache key. */
  | { kind: 'coalesced'; leaderId: string }
  /** A new job was enqueued. */
  | { kind: 'queued' }
  /** The idempotency key names an earlier request of the tenant with the same fingerprint: its record. */
  | { kind: 'replayed'; record: StoredRecord }
  | { kind: 'rejected'; rejection: SubmitRejection };

/** A record as stored, with the fields only the server sees. */
export interface StoredRecord extends RequestRecord {
  tenant: string;
  /** `timeoutMs` as an absolute time (ms since epoch): a request still queued then ends `expired`. */
  deadline?: number;
}

/** What the worker gets for one job when it claims a batch. */
export type Claim =
  | { id: string; state: 'run'; payload: Uint8Array; createdAt: number }
  | { id: string; state: 'dropped'; reason: 'cancelled' | 'expired' | 'finished' | 'missing' };

/** One finished request, written by the worker. */
export interface Completion {
  id: string;
  model: string;
  version: number;
  /** When the request was submitted (ms since epoch), from its claim. */
  createdAt: number;
  status: Extract<RequestStatus, 'succeeded' | 'failed'>;
  /** MessagePack bytes of the outputs map (protocol `encodeTensorMap`). */
  outputs?: Uint8Array;
  error?: RequestError;
  timings: Omit<Timings, 'totalMs'>;
  batchSize: number;
  /** When its batch was claimed (ms since epoch); absent when it never ran. */
  startedAt?: number;
  now: number;
}

export type CancelOutcome = 'cancelled' | 'conflict' | 'missing';
