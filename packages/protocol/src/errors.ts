/**
 * Every error a client can see. Each carries the HTTP status and a stable problem `type`;
 * `toProblem` is the single place that turns any thrown value into RFC 9457 problem+json.
 */

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
}

const PROBLEM_BASE = 'https://inferq.dev/problems/';

export abstract class InferqError extends Error {
  abstract readonly status: number;
  /** Stable, machine-readable slug; the problem `type` is PROBLEM_BASE + code. */
  abstract readonly code: string;
  abstract readonly title: string;
  /** Seconds, sent as `Retry-After` for 429 and 503. */
  readonly retryAfterSeconds: number | undefined;

  constructor(message: string, options?: { cause?: unknown; retryAfterSeconds?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
}

/** Malformed body or tensor (bad JSON, bad MessagePack, data length not matching shape). */
export class BadRequestError extends InferqError {
  readonly status = 400;
  readonly code = 'bad-request';
  readonly title = 'Malformed request';
}

/**
 * A client error another layer recognised first (Express, body-parser, Node), with its own 4xx
 * status: such an error is the client's, so it is never a 500.
 */
export class ClientError extends InferqError {
  readonly status: number;
  readonly code = 'client-error';
  readonly title = 'Request refused';

  constructor(status: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.status = status;
  }
}

/** Missing or wrong API key. */
export class UnauthorizedError extends InferqError {
  readonly status = 401;
  readonly code = 'unauthorized';
  readonly title = 'Missing or invalid API key';
  /** The `WWW-Authenticate` challenges, one header each (RFC 9110 §11.6.1). */
  readonly challenges: readonly string[];

  constructor(message: string, options?: { cause?: unknown; challenges?: readonly string[] }) {
    super(message, options);
    this.challenges = options?.challenges ?? ['Bearer'];
  }
}

/** A valid key that may not do this (a tenant's key on an admin route). */
export class ForbiddenError extends InferqError {
  readonly status = 403;
  readonly code = 'forbidden';
  readonly title = 'Not allowed';
}

/** Unknown model, version or request (also: another tenant's request). */
export class NotFoundError extends InferqError {
  readonly status = 404;
  readonly code = 'not-found';
  readonly title = 'Not found';
}

/** The request is past the point where the operation applies (cancel of a running request). */
export class ConflictError extends InferqError {
  readonly status = 409;
  readonly code = 'conflict';
  readonly title = 'Conflict with the request state';
}

export class PayloadTooLargeError extends InferqError {
  readonly status = 413;
  readonly code = 'payload-too-large';
  readonly title = 'Request body too large';
}

export class UnsupportedMediaTypeError extends InferqError {
  readonly status = 415;
  readonly code = 'unsupported-media-type';
  readonly title = 'Unsupported content type';
}

/** Well-formed inputs that do not match the model's signature (names, dtype, rank, fixed dims). */
export class UnprocessableError extends InferqError {
  readonly status = 422;
  readonly code = 'unprocessable';
  readonly title = 'Inputs do not match the model signature';
}

/** An image input (a pipeline's) whose header cannot be read: corrupt, or not the format it claims. */
export class InvalidImageError extends InferqError {
  readonly status = 422;
  readonly code = 'invalid-image';
  readonly title = 'The image cannot be read';
}

/**
 * Values the model runtime cannot carry as sent: onnxruntime-node cuts a string at its first NUL and
 * replaces a lone UTF-16 surrogate, so the model would see another input than the client sent.
 */
export class UnrepresentableInputError extends InferqError {
  readonly status = 422;
  readonly code = 'unrepresentable-input';
  readonly title = 'Input the model runtime cannot carry';
}

/** A `callback.url` this deployment will not call: scheme, credentials, private address, or webhooks off. */
export class CallbackRefusedError extends InferqError {
  readonly status = 422;
  readonly code = 'callback-refused';
  readonly title = 'Callback URL refused';
}

/** The same `Idempotency-Key` came with a different request (method, model, version or body). */
export class IdempotencyKeyReusedError extends InferqError {
  readonly status = 422;
  readonly code = 'idempotency-key-reused';
  readonly title = 'Idempotency key reused for a different request';
}

/** Not now: always says when to come back (`Retry-After`, whole seconds). */
export class TooManyRequestsError extends InferqError {
  readonly status = 429;
  readonly code: string = 'too-many-requests';
  readonly title: string = 'Too many requests';
  declare readonly retryAfterSeconds: number;

  constructor(message: string, options: { cause?: unknown; retryAfterSeconds: number }) {
    super(message, options);
  }
}

/** The model version already has MAX_QUEUE_DEPTH requests waiting for a worker. */
export class QueueFullError extends TooManyRequestsError {
  override readonly code = 'queue-full';
  override readonly title = 'Queue full';
}

/** The tenant's token bucket (RATE_LIMIT_PER_SECOND, RATE_LIMIT_BURST) is empty. */
export class RateLimitedError extends TooManyRequestsError {
  override readonly code = 'rate-limited';
  override readonly title = 'Rate limit exceeded';
}

/** Redis unreachable or no worker: retry later. */
export class ServiceUnavailableError extends InferqError {
  readonly status = 503;
  readonly code = 'service-unavailable';
  readonly title = 'Service unavailable';
}

/**
 * Early refusal: more requests wait for the model version than can be served before this request's
 * deadline (its `timeoutMs`, else the model's `latencyObjectiveMs`), going by the measured batch
 * costs and the live workers. 503, not 429: it is the service's capacity now, not the client's
 * rate, that falls short; Retry-After says when the queue will have drained enough.
 */
export class DeadlineUnmeetableError extends InferqError {
  readonly status = 503;
  readonly code = 'deadline-unmeetable';
  readonly title = 'Deadline cannot be met';
}

/**
 * A model version that cannot serve requests now: unavailable (the detail gives the reason, verbatim
 * from onnxruntime or the config check) or with no live worker while WAIT_FOR_CAPACITY is off.
 */
export class ModelUnavailableError extends InferqError {
  readonly status = 503;
  readonly code = 'model-unavailable';
  readonly title = 'Model unavailable';
  declare readonly retryAfterSeconds: number;

  constructor(message: string, options: { cause?: unknown; retryAfterSeconds: number }) {
    super(message, options);
  }
}

export function toProblem(error: unknown): Problem {
  if (error instanceof InferqError) {
    return {
      type: PROBLEM_BASE + error.code,
      title: error.title,
      status: error.status,
      detail: error.message,
    };
  }
  return {
    type: `${PROBLEM_BASE}internal`,
    title: 'Internal server error',
    status: 500,
    detail: 'An unexpected error occurred; it has been logged.',
  };
}
