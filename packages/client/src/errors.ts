import type { Problem, RequestRecord } from '@inferq/protocol';

/** The server answered with a non-2xx status; `problem` is its problem+json body when it sent one. */
export class InferqHttpError extends Error {
  readonly status: number;
  readonly problem: Problem | undefined;
  /** From `Retry-After` (seconds), sent with 429 and 503. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    status: number,
    problem: Problem | undefined,
    retryAfterSeconds: number | undefined,
    text = '',
  ) {
    const detail = problem
      ? `${problem.title}: ${problem.detail}`
      : text.trim().slice(0, 500) || 'no details';
    super(`HTTP ${status}: ${detail}`);
    this.name = 'InferqHttpError';
    this.status = status;
    this.problem = problem;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** `waitFor` gave up before the request reached a terminal state; `record` is the last one seen. */
export class InferqTimeoutError extends Error {
  readonly record: RequestRecord;

  constructor(record: RequestRecord, timeoutMs: number) {
    super(`request ${record.id} is still ${record.status} after ${timeoutMs} ms`);
    this.name = 'InferqTimeoutError';
    this.record = record;
  }
}

export function isProblem(value: unknown): value is Problem {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.type === 'string' &&
    typeof v.title === 'string' &&
    typeof v.status === 'number' &&
    typeof v.detail === 'string'
  );
}

/** Seconds from a `Retry-After` header: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(value)) return Number(value);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - now) / 1000));
}
