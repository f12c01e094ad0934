import {
  decodeBulkInferRequest,
  decodeInferRequest,
  encodeRecord,
  packStandard,
  type RequestRecord,
} from '@inferq/protocol';
import { describe, expect, it } from 'vitest';
import { InferqClient } from './client.ts';
import { InferqHttpError, InferqTimeoutError } from './errors.ts';

interface SeenRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: Uint8Array | undefined;
}

/** A fetch that records each request and answers from a script of responses, in order. */
function scriptedFetch(responses: Array<() => Response>): { fetch: typeof fetch; seen: SeenRequest[] } {
  const seen: SeenRequest[] = [];
  const stub = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const headers = Object.fromEntries(new Headers(init?.headers).entries());
    const body =
      init?.body === undefined || init.body === null ? undefined : new Uint8Array(init.body as Uint8Array);
    seen.push({ method: init?.method ?? 'GET', url: String(input), headers, body });
    const next = responses.shift();
    if (next === undefined) throw new Error('no scripted response left');
    return next();
  };
  return { fetch: stub as typeof fetch, seen };
}

const record: RequestRecord = {
  id: 'req-1',
  model: 'noop',
  version: 2,
  status: 'succeeded',
  cached: false,
  createdAt: '2025-01-01T00:00:00.000Z',
  finishedAt: '2025-01-01T00:00:00.010Z',
  timings: { queueMs: 1, batchWaitMs: 2, inferMs: 3, totalMs: 10 },
  batchSize: 1,
  outputs: { y: { dtype: 'float32', shape: [2], data: new Float32Array([1.5, -2]) } },
};

function recordResponse(r: RequestRecord, format: 'json' | 'msgpack', status = 200): Response {
  const contentType = format === 'json' ? 'application/json' : 'application/msgpack';
  return new Response(encodeRecord(r, format).slice(), { status, headers: { 'content-type': contentType } });
}

const body = {
  inputs: { x: { dtype: 'float32' as const, shape: [1, 2], data: new Float32Array([0.25, 4]) } },
};

describe('InferqClient', () => {
  it('submits a bulk body to infer:bulk and answers the ids the server gave', async () => {
    const { fetch, seen } = scriptedFetch([
      () =>
        new Response(JSON.stringify({ ids: ['a', null], rejected: [{ index: 1, status: 429 }] }), {
          status: 202,
          headers: { 'content-type': 'application/json' },
        }),
    ]);
    const client = new InferqClient({ baseUrl: 'http://host:1', format: 'json', fetch });
    const answer = await client.submitBulk('noop', [body, { ...body, cache: false }], {
      version: 2,
      idempotencyKey: 'batch-7',
    });
    expect(answer).toEqual({ ids: ['a', null], rejected: [{ index: 1, status: 429 }] });
    expect(seen[0]?.url).toBe('http://host:1/v1/models/noop/versions/2/infer:bulk');
    expect(seen[0]?.headers['idempotency-key']).toBe('batch-7');
    const sent = decodeBulkInferRequest(seen[0]!.body!, 'json');
    expect(sent.map((request) => request.cache)).toEqual([undefined, false]);
    expect(Array.from(sent[1]!.inputs.x!.data as Float32Array)).toEqual([0.25, 4]);
  });

  it('submits MessagePack to the model (or version) URL with the wait, key and auth headers', async () => {
    const { fetch, seen } = scriptedFetch([
      () =>
        new Response(packStandard({ id: 'abc', status: 'queued', model: 'noop', version: 3 }).slice(), {
          status: 202,
          headers: { 'content-type': 'application/msgpack' },
        }),
    ]);
    const client = new InferqClient({ baseUrl: 'http://host:1/', apiKey: 'k1', fetch });
    const submission = await client.submit('noop', body, { wait: 5, version: 3, idempotencyKey: 'idem-1' });

    expect(submission).toEqual({ id: 'abc', status: 'queued', model: 'noop', version: 3, record: undefined });
    const request = seen[0] as SeenRequest;
    expect(request.method).toBe('POST');
    expect(request.url).toBe('http://host:1/v1/models/noop/versions/3/infer');
    expect(request.headers).toEqual({
      accept: 'application/msgpack',
      authorization: 'Bearer k1',
      'content-type': 'application/msgpack',
      'idempotency-key': 'idem-1',
      prefer: 'wait=5',
    });
    const sent = decodeInferRequest(request.body as Uint8Array, 'msgpack');
    expect(sent.inputs.x?.shape).toEqual([1, 2]);
    expect(Array.from(sent.inputs.x?.data as Float32Array)).toEqual([0.25, 4]);
  });

  it('sends JSON element lists in JSON mode and returns the record of a 200 answer', async () => {
    const { fetch, seen } = scriptedFetch([() => recordResponse(record, 'json')]);
    const client = new InferqClient({ baseUrl: 'http://host:1', format: 'json', fetch });
    const submission = await client.submit('noop', { ...body, outputs: ['y'], metadata: { tag: 'a' } });

    expect(seen[0]?.url).toBe('http://host:1/v1/models/noop/infer');
    expect(seen[0]?.headers.prefer).toBeUndefined();
    expect(JSON.parse(new TextDecoder().decode(seen[0]?.body))).toEqual({
      inputs: { x: { dtype: 'float32', shape: [1, 2], data: [0.25, 4] } },
      outputs: ['y'],
      metadata: { tag: 'a' },
    });
    expect(submission.status).toBe('succeeded');
    expect(submission.record?.outputs?.y?.dtype).toBe('float32');
    expect(Array.from(submission.record?.outputs?.y?.data as Float32Array)).toEqual([1.5, -2]);
  });

  it('turns problem+json answers into InferqHttpError with status, problem and Retry-After', async () => {
    const problem = {
      type: 'https://inferq.dev/problems/service-unavailable',
      title: 'Service unavailable',
      status: 503,
      detail: 'no live worker serves noop',
    };
    const { fetch } = scriptedFetch([
      () =>
        new Response(JSON.stringify(problem), {
          status: 503,
          headers: { 'content-type': 'application/problem+json', 'retry-after': '7' },
        }),
    ]);
    const client = new InferqClient({ baseUrl: 'http://host:1', fetch });
    const error = await client.submit('noop', body).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InferqHttpError);
    expect((error as InferqHttpError).status).toBe(503);
    expect((error as InferqHttpError).problem).toEqual(problem);
    expect((error as InferqHttpError).retryAfterSeconds).toBe(7);
    expect((error as InferqHttpError).message).toBe(
      'HTTP 503: Service unavailable: no live worker serves noop',
    );
  });

  it('keeps a non-problem error body in the message', async () => {
    const { fetch } = scriptedFetch([() => new Response('upstream down', { status: 502 })]);
    const error = await new InferqClient({ baseUrl: 'http://h', fetch }).get('x').catch((e: unknown) => e);
    expect((error as InferqHttpError).problem).toBeUndefined();
    expect((error as InferqHttpError).message).toBe('HTTP 502: upstream down');
  });

  it('waitFor long-polls until the record is terminal', async () => {
    const running: RequestRecord = { ...record, status: 'running', outputs: undefined };
    const { fetch, seen } = scriptedFetch([
      () => recordResponse(running, 'msgpack'),
      () => recordResponse(record, 'msgpack'),
    ]);
    const client = new InferqClient({ baseUrl: 'http://h', fetch });
    const done = await client.waitFor('req-1', 90_000);
    expect(done.status).toBe('succeeded');
    expect(seen.map((r) => r.url)).toEqual([
      'http://h/v1/requests/req-1?wait=60',
      'http://h/v1/requests/req-1?wait=60',
    ]);
  });

  it('waitFor throws InferqTimeoutError with the last record when time is up', async () => {
    const queued: RequestRecord = { ...record, status: 'queued', outputs: undefined };
    const { fetch, seen } = scriptedFetch([() => recordResponse(queued, 'msgpack')]);
    const error = await new InferqClient({ baseUrl: 'http://h', fetch })
      .waitFor('req-1', 0)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InferqTimeoutError);
    expect((error as InferqTimeoutError).record.status).toBe('queued');
    expect(seen[0]?.url).toBe('http://h/v1/requests/req-1?wait=0');
  });

  it('cancels with DELETE and lists models', async () => {
    const noop = {
      name: 'noop',
      versions: [1],
      defaultVersion: 1,
      version: 1,
      inputs: [{ name: 'x', dtype: 'float32', shape: [-1, 4] }],
      outputs: [{ name: 'y', dtype: 'float32', shape: [-1, 4] }],
      batching: { maxBatchSize: 32, maxBatchDelayMs: 2 },
      executionProvider: 'cpu',
      cache: { enabled: true, ttlSeconds: 3600 },
      ready: true,
    };
    const { fetch, seen } = scriptedFetch([
      () => recordResponse({ ...record, status: 'cancelled', outputs: undefined }, 'json'),
      () => Response.json({ models: [noop] }),
      () => Response.json(noop),
    ]);
    const client = new InferqClient({ baseUrl: 'http://h', fetch });
    expect((await client.cancel('req-1')).status).toBe('cancelled');
    expect(seen[0]?.method).toBe('DELETE');
    expect(await client.models()).toEqual([noop]);
    expect(seen[1]?.headers.accept).toBe('application/json');
    expect(await client.model('noop')).toEqual(noop);
    expect(seen[2]?.url).toBe('http://h/v1/models/noop');
  });

  it('events yields each status change, the terminal one with its record, until the stream ends', async () => {
    const terminal = new TextDecoder().decode(encodeRecord(record, 'json'));
    const stream = `event: status\ndata: {"id":"req-1","status":"running"}\n\n: keep-alive\n\nevent: status\ndata: ${terminal}\n\n`;
    const { fetch, seen } = scriptedFetch([
      () => new Response(stream, { status: 200, headers: { 'content-type': 'text/event-stream' } }),
    ]);
    const client = new InferqClient({ baseUrl: 'http://h', fetch });
    const events = [];
    for await (const event of client.events('req-1')) events.push(event);
    expect(seen[0]?.url).toBe('http://h/v1/requests/req-1/events');
    expect(seen[0]?.headers.accept).toBe('text/event-stream');
    expect(events.map(({ id, status }) => ({ id, status }))).toEqual([
      { id: 'req-1', status: 'running' },
      { id: 'req-1', status: 'succeeded' },
    ]);
    expect(events[0]?.record).toBeUndefined();
    expect(events[1]?.record?.timings).toEqual(record.timings);
    expect(Array.from(events[1]?.record?.outputs?.y?.data as Float32Array)).toEqual([1.5, -2]);
  });
});
