import { Agent, request as httpRequest } from 'node:http';
import { unpackStandard } from '@inferq/protocol';
import { Http1Pool, type HttpAnswer } from './http1.ts';
import type { Outcome } from './load.ts';

export type { HttpAnswer } from './http1.ts';

/** The fields of a request record the bench reads. */
export interface RecordView {
  id: string;
  status: string;
  cached: boolean;
  coalesced: boolean;
  inferMs: number | undefined;
  /** Bytes of the first output's data, to compare answers. */
  firstOutput: Buffer | undefined;
}

const MSGPACK = 'application/msgpack';

/**
 * HTTP to the inferq API over `connections` keep-alive sockets (Http1Pool, the bench's lean HTTP/1.1
 * client): MessagePack bodies both ways.
 */
export class ApiClient implements InferClient {
  private readonly pool: Http1Pool;

  constructor(
    readonly origin: string,
    connections: number,
  ) {
    const url = new URL(origin);
    if (url.protocol !== 'http:')
      throw new Error(`the bench speaks plain HTTP, not ${url.protocol} (${origin})`);
    this.pool = new Http1Pool(url.hostname, Number(url.port || 80), connections);
  }

  post(path: string, body: Buffer, headers: Record<string, string> = {}): Promise<HttpAnswer> {
    return this.pool.exchange('POST', path, { 'content-type': MSGPACK, accept: MSGPACK, ...headers }, body);
  }

  get(path: string, headers: Record<string, string> = { accept: MSGPACK }): Promise<HttpAnswer> {
    return this.pool.exchange('GET', path, headers);
  }

  infer(model: string, body: Buffer, waitSeconds: number): Promise<HttpAnswer> {
    const { path, headers } = inferRequest(model, waitSeconds);
    return this.pool.exchange('POST', path, headers, body);
  }

  close(): Promise<void> {
    this.pool.close();
    return Promise.resolve();
  }
}

/** `POST /v1/models/{model}/infer` in MessagePack, with `Prefer: wait=N` when `waitSeconds` > 0. */
function inferRequest(model: string, waitSeconds: number): { path: string; headers: Record<string, string> } {
  return {
    path: `/v1/models/${encodeURIComponent(model)}/infer`,
    headers: {
      'content-type': MSGPACK,
      accept: MSGPACK,
      ...(waitSeconds > 0 ? { prefer: `wait=${waitSeconds}` } : {}),
    },
  };
}

/** What the single-client latency scenarios need of a client. */
export interface InferClient {
  infer(model: string, body: Buffer, waitSeconds: number): Promise<HttpAnswer>;
  close(): Promise<void>;
}

/**
 * The same requests through node:http's client and a keep-alive Agent, the client most Node services
 * would use: measured next to P1 to show what such a client adds of its own.
 */
export class NodeHttpClient implements InferClient {
  // `timeout` makes the agent honour the server's `Keep-Alive: timeout=5` hint: an idle socket is
  // dropped after 4 s instead of being reused into the server's close (ECONNRESET under load).
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1, timeout: 60_000 });

  constructor(readonly origin: string) {}

  infer(model: string, body: Buffer, waitSeconds: number): Promise<HttpAnswer> {
    const { path, headers } = inferRequest(model, waitSeconds);
    return new Promise((resolve, reject) => {
      const request = httpRequest(
        `${this.origin}${path}`,
        {
          method: 'POST',
          agent: this.agent,
          headers: { ...headers, 'content-length': String(body.byteLength) },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () =>
            resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks) }),
          );
          response.on('error', reject);
        },
      );
      request.on('error', reject);
      request.end(body);
    });
  }

  close(): Promise<void> {
    this.agent.destroy();
    return Promise.resolve();
  }
}

/** Reads a MessagePack record answer (`200` of a submit with `Prefer: wait`, or of `GET /v1/requests/{id}`). */
export function readRecord(body: Buffer): RecordView {
  const wire = unpackStandard(body) as Record<string, unknown>;
  const timings = wire.timings as Record<string, unknown> | undefined;
  const outputs = wire.outputs as Record<string, { data?: unknown }> | undefined;
  const first = outputs === undefined ? undefined : Object.values(outputs)[0]?.data;
  return {
    id: String(wire.id),
    status: String(wire.status),
    cached: wire.cached === true,
    coalesced: wire.coalesced === true,
    inferMs: typeof timings?.inferMs === 'number' ? timings.inferMs : undefined,
    firstOutput: Buffer.isBuffer(first) ? first : undefined,
  };
}

/**
 * `HTTP <status>` plus the problem's detail when the body is problem+json, to say why in a failure
 * count (e.g. `HTTP 400: "requests" holds 250 requests; at most 64 are allowed`).
 */
export function describeRefusal(answer: HttpAnswer): string {
  try {
    const problem = JSON.parse(answer.body.toString('utf8')) as { detail?: unknown; title?: unknown };
    const why = typeof problem.detail === 'string' ? problem.detail : problem.title;
    if (typeof why === 'string') return `HTTP ${answer.status}: ${why.slice(0, 120)}`;
  } catch {
    // Not JSON: the status alone.
  }
  return `HTTP ${answer.status}`;
}

/** The outcome of a submit that waited for its result: ok only for a `200` record that `succeeded`. */
export function waitedOutcome(answer: HttpAnswer): Outcome {
  if (answer.status === 202) return { ok: false, error: 'not finished within the wait' };
  if (answer.status !== 200) return { ok: false, error: describeRefusal(answer) };
  const record = readRecord(answer.body);
  if (record.status !== 'succeeded') return { ok: false, error: `record ${record.status}` };
  return { ok: true, inferMs: record.inferMs };
}
