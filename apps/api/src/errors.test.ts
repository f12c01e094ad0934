import {
  BadRequestError,
  NotFoundError,
  PayloadTooLargeError,
  ServiceUnavailableError,
  toProblem,
  UnsupportedMediaTypeError,
} from '@inferq/protocol';
import { describe, expect, it } from 'vitest';
import { isRedisUnavailable, normalizeError } from './errors.ts';

function withFields(message: string, fields: Record<string, unknown>): Error {
  return Object.assign(new Error(message), fields);
}

describe('normalizeError', () => {
  it('keeps our own errors', () => {
    const error = new NotFoundError('no model');
    expect(normalizeError(error)).toBe(error);
  });

  it.each([
    ['entity.too.large', PayloadTooLargeError],
    ['encoding.unsupported', UnsupportedMediaTypeError],
    ['charset.unsupported', UnsupportedMediaTypeError],
    ['request.aborted', BadRequestError],
    ['request.size.invalid', BadRequestError],
  ])('maps body-parser %s', (type, expected) => {
    expect(normalizeError(withFields('body-parser', { type, limit: 10 }))).toBeInstanceOf(expected);
  });

  it.each([
    new Error('Connection is closed.'),
    new Error("Stream isn't writeable and enableOfflineQueue options is false"),
    withFields('Reached the max retries per request limit (which is 1).', {
      name: 'MaxRetriesPerRequestError',
    }),
    withFields('connect ECONNREFUSED 127.0.0.1:6379', { code: 'ECONNREFUSED' }),
    new Error('LOADING Redis is loading the dataset in memory'),
    new Error('enqueue failed', { cause: new Error('Connection is closed.') }),
    new AggregateError([withFields('refused', { code: 'ECONNREFUSED' })], 'all failed'),
  ])('maps a Redis outage (%s) to 503 with Retry-After: 1', (error) => {
    const normalized = normalizeError(error);
    expect(normalized).toBeInstanceOf(ServiceUnavailableError);
    expect((normalized as ServiceUnavailableError).retryAfterSeconds).toBe(1);
    expect(toProblem(normalized).status).toBe(503);
  });

  it('leaves anything else for the 500 path, without its details', () => {
    const error = new TypeError('x is undefined');
    expect(normalizeError(error)).toBe(error);
    expect(isRedisUnavailable(error)).toBe(false);
    expect(toProblem(normalizeError(error))).toMatchObject({ status: 500 });
    expect(JSON.stringify(toProblem(normalizeError(error)))).not.toContain('x is undefined');
  });
});
