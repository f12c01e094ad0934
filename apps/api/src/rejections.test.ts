import {
  IdempotencyKeyReusedError,
  QueueFullError,
  RateLimitedError,
  TooManyRequestsError,
  toProblem,
} from '@inferq/protocol';
import { describe, expect, it } from 'vitest';
import { rejectionError } from './errors.ts';

const target = { model: 'ocr', version: 2, tenant: 'acme' };

describe('rejectionError', () => {
  it('turns a full queue into 429 queue-full with its Retry-After', () => {
    const error = rejectionError(
      { reason: 'queue-full', retryAfterSeconds: 1, depth: 10_000, maxQueueDepth: 10_000 },
      target,
    );
    expect(error).toBeInstanceOf(QueueFullError);
    expect(error).toBeInstanceOf(TooManyRequestsError);
    expect(error.retryAfterSeconds).toBe(1);
    expect(toProblem(error)).toEqual({
      type: 'https://inferq.dev/problems/queue-full',
      title: 'Queue full',
      status: 429,
      detail:
        "model 'ocr' version 2 has 10000 requests waiting, its limit (MAX_QUEUE_DEPTH=10000); retry in 1 s",
    });
  });

  it('turns an empty token bucket into 429 rate-limited with its Retry-After', () => {
    const error = rejectionError(
      { reason: 'rate-limited', retryAfterSeconds: 3, perSecond: 0.5, burst: 2 },
      target,
    );
    expect(error).toBeInstanceOf(RateLimitedError);
    expect(error.retryAfterSeconds).toBe(3);
    expect(toProblem(error)).toEqual({
      type: 'https://inferq.dev/problems/rate-limited',
      title: 'Rate limit exceeded',
      status: 429,
      detail: "tenant 'acme' is over its rate limit of 0.5 requests/s (burst 2); retry in 3 s",
    });
  });

  it('turns a reused idempotency key into 422 without Retry-After', () => {
    const error = rejectionError({ reason: 'idempotency-key-reused', key: 'order-7' }, target);
    expect(error).toBeInstanceOf(IdempotencyKeyReusedError);
    expect(error.retryAfterSeconds).toBeUndefined();
    expect(toProblem(error)).toEqual({
      type: 'https://inferq.dev/problems/idempotency-key-reused',
      title: 'Idempotency key reused for a different request',
      status: 422,
      detail:
        "Idempotency-Key 'order-7' was first used with a different request; send a new key for a new request",
    });
  });
});
