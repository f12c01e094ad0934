import { STATUS_CODES } from 'node:http';
import {
  BadRequestError,
  ClientError,
  DeadlineUnmeetableError,
  IdempotencyKeyReusedError,
  InferqError,
  PayloadTooLargeError,
  QueueFullError,
  RateLimitedError,
  ServiceUnavailableError,
  toProblem,
  UnsupportedMediaTypeError,
} from '@inferq/protocol';
import type { SubmitRejection } from '@inferq/store';

/** Errors ioredis and the OS raise while Redis cannot be reached (or cannot serve yet). */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'NR_CLOSED',
]);
const UNAVAILABLE_MESSAGES = [
  /Connection is closed/i,
  // enableOfflineQueue: false (the API's command connection) while disconnected
  /Stream isn't writeable/i,
  /enableOfflineQueue/i,
  /max retries per request/i,
  // Redis replies meaning "not now": loading the dataset, busy script, failover in progress
  /^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY)\b/,
  // ioredis Cluster while the cluster changes hands (a failover) or none of its nodes answers
  /Too many Cluster redirections/i,
  /None of startup nodes is available/i,
  /Failed to refresh slots cache/i,
  /Cluster isn't ready/i,
  // The submit script found no payload under its key: the SET sent just before it did not reach
  // the node that ran the script (a failover moved the slot between the two). Nothing was written.
  /^NOPAYLOAD\b/,
];

/**
 * Redis replies meaning "reachable, but refusing writes": full at `maxmemory` under `noeviction`
 * (the policy inferq requires), unable to persist (`MISCONF`), too few replicas (`NOREPLICAS`).
 */
const REFUSING_WRITES = /^(OOM|MISCONF|NOREPLICAS)\b/;

/** Seconds a client should wait after Redis refused a write: freeing memory takes an operator or a TTL. */
export const REDIS_FULL_RETRY_AFTER_SECONDS = 5;

/** True when `error` (or anything in its cause chain) is Redis refusing writes (see REFUSING_WRITES). */
export function isRedisRefusingWrites(error: unknown, depth = 0): boolean {
  if (depth > 5 || typeof error !== 'object' || error === null) return false;
  const e = error as { message?: unknown; cause?: unknown; errors?: unknown };
  if (typeof e.message === 'string' && REFUSING_WRITES.test(e.message)) return true;
  if (Array.isArray(e.errors) && e.errors.some((inner) => isRedisRefusingWrites(inner, depth + 1)))
    return true;
  return isRedisRefusingWrites(e.cause, depth + 1);
}

/** True when `error` (or anything in its cause chain) says Redis is unreachable right now. */
export function isRedisUnavailable(error: unknown, depth = 0): boolean {
  if (depth > 5 || typeof error !== 'object' || error === null) return false;
  const e = error as { name?: unknown; code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  if (e.name === 'MaxRetriesPerRequestError') return true;
  if (typeof e.code === 'string' && UNAVAILABLE_CODES.has(e.code)) return true;
  if (
    typeof e.message === 'string' &&
    UNAVAILABLE_MESSAGES.some((pattern) => pattern.test(e.message as string))
  ) {
    return true;
  }
  if (Array.isArray(e.errors) && e.errors.some((inner) => isRedisUnavailable(inner, depth + 1))) return true;
  return isRedisUnavailable(e.cause, depth + 1);
}

/**
 * Turns whatever a handler or middleware threw into an InferqError where the meaning is known
 * (body-parser's limits, Redis outages); anything else is returned as is and becomes a 500.
 */
export function normalizeError(error: unknown): unknown {
  if (error instanceof InferqError) return error;
  const bodyError = fromBodyParser(error) ?? fromClientStatus(error);
  if (bodyError !== undefined) return bodyError;
  if (isRedisRefusingWrites(error)) {
    return new ServiceUnavailableError(
      'Redis refuses new writes (out of memory at maxmemory, or unable to persist); retry later',
      { cause: error, retryAfterSeconds: REDIS_FULL_RETRY_AFTER_SECONDS },
    );
  }
  if (isRedisUnavailable(error)) {
    return new ServiceUnavailableError('Redis is unreachable; retry shortly', {
      cause: error,
      retryAfterSeconds: 1,
    });
  }
  return error;
}

function fromBodyParser(error: unknown): InferqError | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { type, limit } = error as { type?: unknown; limit?: unknown };
  switch (type) {
    case 'entity.too.large':
      return new PayloadTooLargeError(
        `the body is larger than the limit of ${String(limit)} bytes (MAX_BODY_BYTES)`,
        {
          cause: error,
        },
      );
    case 'encoding.unsupported':
      return new UnsupportedMediaTypeError('unsupported Content-Encoding; use gzip, deflate, br or none', {
        cause: error,
      });
    case 'charset.unsupported':
      return new UnsupportedMediaTypeError('unsupported charset', { cause: error });
    case 'request.aborted':
      return new BadRequestError('the client aborted the request body', { cause: error });
    case 'request.size.invalid':
      return new BadRequestError('the body length does not match Content-Length', { cause: error });
    default:
      return undefined;
  }
}

/**
 * Any other error that carries a 4xx status (http-errors' `status`/`statusCode`, as body-parser,
 * Express and its router set them) is the client's: a corrupt gzip/deflate/br body (zlib's error,
 * given 400 by body-parser), an undecodable path parameter, and whatever they add later.
 */
function fromClientStatus(error: unknown): InferqError | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { status, statusCode, expose, code, message } = error as Record<string, unknown>;
  const value = typeof status === 'number' ? status : statusCode;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 400 || value > 499) return undefined;
  const said = expose === true && typeof message === 'string' ? message : 'the request was refused';
  // zlib's and brotli's codes: the body's Content-Encoding did not decode.
  const detail =
    typeof code === 'string' && /^(Z_|ERR__|ERR_BROTLI|ERR_ZLIB)/.test(code)
      ? `the body could not be decoded as its Content-Encoding says: ${said}`
      : said;
  const options = { cause: error };
  switch (value) {
    case 400:
      return new BadRequestError(detail, options);
    case 413:
      return new PayloadTooLargeError(detail, options);
    case 415:
      return new UnsupportedMediaTypeError(detail, options);
    default:
      return new ClientError(value, detail, options);
  }
}

/** The typed error (429 or 503 with Retry-After, or 422) for a submission the submit script refused. */
export function rejectionError(
  rejection: SubmitRejection,
  target: { model: string; version: number; tenant: string },
): InferqError {
  switch (rejection.reason) {
    case 'queue-full':
      return new QueueFullError(
        `model '${target.model}' version ${target.version} has ${rejection.depth} requests waiting, ` +
          `its limit (MAX_QUEUE_DEPTH=${rejection.maxQueueDepth}); retry in ${rejection.retryAfterSeconds} s`,
        { retryAfterSeconds: rejection.retryAfterSeconds },
      );
    case 'rate-limited':
      return new RateLimitedError(
        `tenant '${target.tenant}' is over its rate limit of ${rejection.perSecond} requests/s ` +
          `(burst ${rejection.burst}); retry in ${rejection.retryAfterSeconds} s`,
        { retryAfterSeconds: rejection.retryAfterSeconds },
      );
    case 'deadline-unmeetable':
      return new DeadlineUnmeetableError(
        `model '${target.model}' version ${target.version} has ${rejection.depth} requests waiting, ` +
          `more than can be served before this request's deadline (${rejection.maxWaitingAhead} at ` +
          `most at the measured rate); retry in ${rejection.retryAfterSeconds} s`,
        { retryAfterSeconds: rejection.retryAfterSeconds },
      );
    case 'idempotency-key-reused':
      return new IdempotencyKeyReusedError(
        `Idempotency-Key '${rejection.key}' was first used with a different request; ` +
          'send a new key for a new request',
      );
    default: {
      const unreachable: never = rejection;
      throw new Error(`unknown rejection ${JSON.stringify(unreachable)}`);
    }
  }
}

/**
 * The raw answer to a request Node's HTTP parser refused before any handler saw it (its
 * `clientError`): Node's own is a bare status line, every other error here is problem+json.
 * Headers past Node's limit (16 KiB, a long URL included) are 431, a timed-out request 408, any
 * other malformed request 400.
 */
export function clientErrorResponse(error: { code?: string }): string {
  const [status, detail] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'the request line and headers are larger than the server accepts (16 KiB)']
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'the request did not arrive in time']
        : [400, 'the request is not valid HTTP/1.1'];
  const body = JSON.stringify(toProblem(new ClientError(status, detail)));
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
    'Content-Type: application/problem+json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}
