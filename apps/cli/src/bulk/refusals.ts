/**
 * What to do when the API refuses an `infer:bulk` call, or a request of one: mark one input
 * rejected and send the rest, wait and send the same chunk again, or stop the run.
 */
import { InferqHttpError } from '@inferq/client';

export type BulkRefusal =
  /** The API refused request `index` of the body itself (it does not fit the model): final. */
  | { kind: 'input'; index: number; code: string; message: string }
  /** Busy, rate-limited, unreachable: the same chunk may be sent again later. */
  | { kind: 'transient'; retryAfterSeconds: number | undefined; message: string }
  /** Nothing this run can fix (a key, the model's name, the body's size): stop. */
  | { kind: 'fatal'; message: string };

/** Statuses after which the same call may succeed later. */
const TRANSIENT_STATUSES = new Set([408, 429, 502, 503, 504]);

/** A problem's `type` slug: `https://inferq.dev/problems/queue-full` → `queue-full`. */
export function problemCode(type: string | undefined, status: number): string {
  if (type === undefined) return `http-${status}`;
  return type.slice(type.lastIndexOf('/') + 1) || `http-${status}`;
}

/** The API names the request of a bulk body that it refused: `requests[3]: inputs.x: ...`. */
const REQUEST_INDEX = /^requests\[(\d+)\]: ([\s\S]*)$/;

/** Why a whole `infer:bulk` call failed, for a chunk of `size` requests. */
export function classifyBulkError(error: unknown, size: number): BulkRefusal {
  if (!(error instanceof InferqHttpError)) {
    // fetch failed: refused connection, reset, DNS. The body may have been accepted; the chunk's
    // key makes sending it again safe.
    const cause = error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : '';
    return {
      kind: 'transient',
      retryAfterSeconds: undefined,
      message: `${error instanceof Error ? error.message : String(error)}${cause}`,
    };
  }
  if (TRANSIENT_STATUSES.has(error.status)) {
    return { kind: 'transient', retryAfterSeconds: error.retryAfterSeconds, message: error.message };
  }
  const code = problemCode(error.problem?.type, error.status);
  const detail = error.problem?.detail ?? error.message;
  const named = REQUEST_INDEX.exec(detail);
  if (named !== null && error.status >= 400 && error.status < 500 && code !== 'idempotency-key-reused') {
    const index = Number(named[1]);
    if (index < size) return { kind: 'input', index, code, message: named[2] as string };
  }
  // A body of one request that is too large is that request's fault.
  if (error.status === 413 && size === 1) return { kind: 'input', index: 0, code, message: detail };
  if (error.status === 400 && /"requests" holds \d+ requests; at most \d+/.test(detail)) {
    return { kind: 'fatal', message: `${error.message} (lower --chunk-size to the API's MAX_BULK_REQUESTS)` };
  }
  if (error.status === 413) {
    return {
      kind: 'fatal',
      message: `${error.message} (lower --chunk-bytes below the API's MAX_BODY_BYTES)`,
    };
  }
  return { kind: 'fatal', message: error.message };
}

/** An entry of a 202's `rejected`: admission control refused that request for now. */
export function classifyRejection(entry: {
  type: string;
  detail: string;
  status: number;
  retryAfterSeconds?: number;
}): BulkRefusal {
  const code = problemCode(entry.type, entry.status);
  if (code === 'idempotency-key-reused') return { kind: 'fatal', message: entry.detail };
  return { kind: 'transient', retryAfterSeconds: entry.retryAfterSeconds, message: entry.detail };
}

/** Longest pause between two tries of one chunk. */
export const MAX_RETRY_DELAY_MS = 10_000;

/**
 * How long to wait before try `attempt + 1` (attempt counts from 1): doubling from half a second,
 * at least what `Retry-After` asked, never more than MAX_RETRY_DELAY_MS (a long Retry-After is
 * checked again sooner rather than left to stall the run).
 */
export function retryDelayMs(attempt: number, retryAfterSeconds: number | undefined): number {
  const backoff = 500 * 2 ** Math.min(attempt - 1, 10);
  return Math.min(MAX_RETRY_DELAY_MS, Math.max(backoff, (retryAfterSeconds ?? 0) * 1000));
}
