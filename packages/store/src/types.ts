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
}

export type SubmitOutcome =
  /** Served from the cache: the record is already terminal (`cached: true`). */
  | { kind: 'cached'; record: StoredRecord }
  /** Attached to an in-flight leader with the same cache key. */
  | { kind: 'coalesced'; leaderId: string }
  /** A new job was enqueued. */
  | { kind: 'queued' };

/** A record as stored, with the fields only the server sees. */
export interface StoredRecord extends RequestRecord {
  tenant: string;
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
  now: number;
}

export type CancelOutcome = 'cancelled' | 'conflict' | 'missing';
