import {
  BadRequestError,
  NotFoundError,
  PayloadTooLargeError,
  ServiceUnavailableError,
  toProblem,
  UnsupportedMediaTypeError,
} from '@inferq/protocol';
import { describe, expect, it } from 'vitest';
import { clientErrorResponse, isRedisUnavailable, normalizeError } from './errors.ts';

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
    new Error('CLUSTERDOWN The cluster is down'),
    new Error('Too many Cluster redirections. Last error: Error: Connection is closed.'),
    new Error('None of startup nodes is available'),
    new Error('Failed to refresh slots cache.'),
    new Error("Cluster isn't ready and enableOfflineQueue options is false"),
    new Error('NOPAYLOAD the payload written before the submit script is missing'),
  ])('maps a Redis outage (%s) to 503 with Retry-After: 1', (error) => {
    const normalized = normalizeError(error);
    expect(normalized).toBeInstanceOf(ServiceUnavailableError);
    expect((normalized as ServiceUnavailableError).retryAfterSeconds).toBe(1);
    expect(toProblem(normalized).status).toBe(503);
  });

  it.each([
    [
      withFields('unexpected end of file', {
        code: 'Z_BUF_ERROR',
        status: 400,
        statusCode: 400,
        expose: true,
      }),
      400,
    ],
    [
      withFields('Decompression failed', { code: 'ERR__ERROR_FORMAT_DICTIONARY', status: 400, expose: true }),
      400,
    ],
    [withFields('Failed to decode param', { status: 400, expose: true }), 400],
    [withFields('too large', { statusCode: 413, expose: true }), 413],
    [withFields('unsupported', { status: 415, expose: true }), 415],
    [withFields('secret internals', { status: 431, expose: false }), 431],
  ])('maps an error carrying a client status (%s) to that 4xx', (error, status) => {
    const problem = toProblem(normalizeError(error));
    expect(problem.status).toBe(status);
    if ((error as { expose?: boolean }).expose === false) expect(problem.detail).not.toContain('secret');
    else expect(problem.detail).toContain(error.message);
    if ((error as { code?: string }).code !== undefined)
      expect(problem.detail).toMatch(/could not be decoded/);
  });

  it.each([
    new Error("OOM command not allowed when used memory > 'maxmemory'."),
    new Error(
      'MISCONF Redis is configured to save RDB snapshots, but it is currently not able to persist on disk.',
    ),
    new Error('NOREPLICAS Not enough good replicas to write.'),
    new Error('submit failed', {
      cause: new Error("OOM command not allowed when used memory > 'maxmemory'."),
    }),
  ])('maps Redis refusing writes (%s) to 503 with Retry-After', (error) => {
    const normalized = normalizeError(error);
    expect(normalized).toBeInstanceOf(ServiceUnavailableError);
    expect((normalized as ServiceUnavailableError).retryAfterSeconds).toBe(5);
    expect(toProblem(normalized)).toMatchObject({
      status: 503,
      detail: expect.stringMatching(/Redis refuses new writes/),
    });
  });

  it('keeps a 5xx status for the 500 path', () => {
    const error = withFields('boom', { status: 502, expose: false });
    expect(normalizeError(error)).toBe(error);
  });

  it('leaves anything else for the 500 path, without its details', () => {
    const error = new TypeError('x is undefined');
    expect(normalizeError(error)).toBe(error);
    expect(isRedisUnavailable(error)).toBe(false);
    expect(toProblem(normalizeError(error))).toMatchObject({ status: 500 });
    expect(JSON.stringify(toProblem(normalizeError(error)))).not.toContain('x is undefined');
  });
});

describe('clientErrorResponse', () => {
  it.each([
    ['HPE_HEADER_OVERFLOW', 431, 'Request Header Fields Too Large'],
    ['ERR_HTTP_REQUEST_TIMEOUT', 408, 'Request Timeout'],
    ['HPE_INVALID_METHOD', 400, 'Bad Request'],
  ])('answers %s with %i problem+json', (code, status, reason) => {
    const [head = '', body = ''] = clientErrorResponse({ code }).split('\r\n\r\n');
    expect(head.split('\r\n')[0]).toBe(`HTTP/1.1 ${status} ${reason}`);
    expect(head).toContain('Content-Type: application/problem+json');
    expect(head).toContain(`Content-Length: ${Buffer.byteLength(body)}`);
    expect(JSON.parse(body)).toMatchObject({ status, type: 'https://inferq.dev/problems/client-error' });
  });
});
