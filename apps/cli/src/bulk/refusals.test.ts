import { InferqHttpError } from '@inferq/client';
import { describe, expect, it } from 'vitest';
import {
  classifyBulkError,
  classifyRejection,
  MAX_RETRY_DELAY_MS,
  problemCode,
  retryDelayMs,
} from './refusals.ts';

function httpError(
  status: number,
  code: string,
  detail: string,
  retryAfterSeconds?: number,
): InferqHttpError {
  const problem = { type: `https://inferq.dev/problems/${code}`, title: 'Title', status, detail };
  return new InferqHttpError(status, problem, retryAfterSeconds);
}

describe('classifyBulkError', () => {
  it('blames the request the API names for a 4xx, with the rest of its message', () => {
    const error = httpError(422, 'unprocessable', "requests[3]: input 'x' has 3 on axis 1");
    expect(classifyBulkError(error, 10)).toEqual({
      kind: 'input',
      index: 3,
      code: 'unprocessable',
      message: "input 'x' has 3 on axis 1",
    });
    expect(
      classifyBulkError(httpError(400, 'bad-request', 'requests[0]: body has no "inputs"'), 1),
    ).toMatchObject({
      kind: 'input',
      index: 0,
      code: 'bad-request',
    });
  });

  it('blames the one request of a body too large, but stops on a larger chunk', () => {
    expect(classifyBulkError(httpError(413, 'payload-too-large', 'body too large'), 1)).toMatchObject({
      kind: 'input',
      index: 0,
    });
    expect(classifyBulkError(httpError(413, 'payload-too-large', 'body too large'), 2)).toMatchObject({
      kind: 'fatal',
      message: expect.stringMatching(/--chunk-bytes/),
    });
  });

  it('retries busy, rate-limited, unavailable and unreachable, with the Retry-After', () => {
    expect(classifyBulkError(httpError(429, 'queue-full', 'full', 3), 5)).toEqual({
      kind: 'transient',
      retryAfterSeconds: 3,
      message: 'HTTP 429: Title: full',
    });
    expect(classifyBulkError(httpError(503, 'model-unavailable', 'requests[1]: no', 5), 5).kind).toBe(
      'transient',
    );
    const refused = new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:1') });
    expect(classifyBulkError(refused, 5)).toEqual({
      kind: 'transient',
      retryAfterSeconds: undefined,
      message: 'fetch failed (connect ECONNREFUSED 127.0.0.1:1)',
    });
  });

  it('stops on what no retry fixes: a key, an unknown model, a reused idempotency key, too many requests', () => {
    expect(classifyBulkError(httpError(401, 'unauthorized', 'no key'), 5)).toEqual({
      kind: 'fatal',
      message: 'HTTP 401: Title: no key',
    });
    expect(classifyBulkError(httpError(404, 'not-found', "unknown model 'x'"), 5).kind).toBe('fatal');
    expect(
      classifyBulkError(
        httpError(422, 'idempotency-key-reused', 'requests[0]: was first used with another'),
        5,
      ).kind,
    ).toBe('fatal');
    expect(
      classifyBulkError(
        httpError(400, 'bad-request', '"requests" holds 64 requests; at most 10 are allowed'),
        64,
      ),
    ).toMatchObject({ kind: 'fatal', message: expect.stringMatching(/lower --chunk-size/) });
    // An index the chunk does not have is no request of ours.
    expect(classifyBulkError(httpError(422, 'unprocessable', 'requests[7]: bad'), 5).kind).toBe('fatal');
  });
});

describe('classifyRejection', () => {
  it('retries what admission control refused for now; a reused key stops', () => {
    expect(
      classifyRejection({
        type: 'https://inferq.dev/problems/rate-limited',
        status: 429,
        detail: 'slow down',
        retryAfterSeconds: 2,
      }),
    ).toEqual({ kind: 'transient', retryAfterSeconds: 2, message: 'slow down' });
    expect(
      classifyRejection({
        type: 'https://inferq.dev/problems/idempotency-key-reused',
        status: 422,
        detail: 'reused',
      }),
    ).toEqual({ kind: 'fatal', message: 'reused' });
  });
});

describe('problemCode', () => {
  it("is the problem type's last segment, or the status", () => {
    expect(problemCode('https://inferq.dev/problems/queue-full', 429)).toBe('queue-full');
    expect(problemCode(undefined, 502)).toBe('http-502');
  });
});

describe('retryDelayMs', () => {
  it('doubles from half a second, waits at least Retry-After, and never more than the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 30].map((attempt) => retryDelayMs(attempt, undefined))).toEqual([
      500,
      1000,
      2000,
      4000,
      8000,
      MAX_RETRY_DELAY_MS,
      MAX_RETRY_DELAY_MS,
    ]);
    expect(retryDelayMs(1, 3)).toBe(3000);
    expect(retryDelayMs(1, 3600)).toBe(MAX_RETRY_DELAY_MS);
  });
});
