import {
  contentTypeOf,
  decodeRecord,
  formatFromContentType,
  type InferRequestBody,
  type ModelDescription,
  type RequestRecord,
  type RequestStatus,
  TERMINAL_STATUSES,
  unpackStandard,
  type WireFormat,
} from '@inferq/protocol';
import { InferqHttpError, InferqTimeoutError, isProblem, parseRetryAfter } from './errors.ts';
import { readServerSentEvents } from './sse.ts';
import { encodeBulkInferRequest, encodeInferRequest } from './wire.ts';

export interface InferqClientOptions {
  /** Where the API listens, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <key>` (needed when the server sets API_KEYS). */
  apiKey?: string;
  /** Body and response format; MessagePack (the default) carries tensors as raw bytes. */
  format?: WireFormat;
  /** Replaces the global fetch (a proxy-aware one, or a stub in tests). */
  fetch?: typeof fetch;
}

export interface SubmitOptions {
  /** Seconds (at most 60) the server may hold the answer for the result (`Prefer: wait=N`). */
  wait?: number;
  /** A model version; the highest one when absent. */
  version?: number;
  /** Submitting again with the same key returns the first request instead of a new one. */
  idempotencyKey?: string;
  signal?: AbortSignal;
}

/** What `submit` got back. */
export interface Submission {
  id: string;
  model: string;
  version: number;
  status: RequestStatus;
  /** The full record when the server answered with it: a cached result, or finished within `wait`. */
  record: RequestRecord | undefined;
}

/** `GET /v1/models/{model}`: a model and its default version's signature. */
export type ModelInfo = ModelDescription;

/** Answer of `submitBulk` (docs/api.md `infer:bulk`). */
export interface BulkSubmission {
  ids: (string | null)[];
  rejected?: {
    index: number;
    type: string;
    title: string;
    status: number;
    detail: string;
    retryAfterSeconds?: number;
  }[];
}

/** One status change from `GET /v1/requests/{id}/events`. */
export interface RequestEvent {
  id: string;
  status: RequestStatus;
  /** The full record, on the terminal event. */
  record: RequestRecord | undefined;
}

/** Longest `wait` the server honours (docs/api.md); longer waits are made of several long polls. */
const MAX_WAIT_SECONDS = 60;

/** A small client for the inferq HTTP API (docs/api.md). */
export class InferqClient {
  private readonly baseUrl: string;
  private readonly apiKey: string | undefined;
  private readonly format: WireFormat;
  private readonly fetchImpl: typeof fetch;

  constructor(options: InferqClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.apiKey = options.apiKey;
    this.format = options.format ?? 'msgpack';
    this.fetchImpl = options.fetch ?? fetch;
  }

  /** Submits one request: `202` gives its id (`record` undefined), `200` the finished record too. */
  async submit(model: string, body: InferRequestBody, options: SubmitOptions = {}): Promise<Submission> {
    const path =
      options.version === undefined
        ? `/v1/models/${encodeURIComponent(model)}/infer`
        : `/v1/models/${encodeURIComponent(model)}/versions/${options.version}/infer`;
    const headers: Record<string, string> = { 'content-type': contentTypeOf(this.format) };
    if (options.wait !== undefined) headers.prefer = `wait=${Math.max(0, Math.floor(options.wait))}`;
    if (options.idempotencyKey !== undefined) headers['idempotency-key'] = options.idempotencyKey;
    const response = await this.send('POST', path, {
      headers,
      body: encodeInferRequest(body, this.format),
      signal: options.signal,
    });
    if (response.status === 200) {
      const record = await readRecord(response);
      return { id: record.id, model: record.model, version: record.version, status: record.status, record };
    }
    const accepted = (await readBody(response)) as Omit<Submission, 'record'>;
    return {
      id: accepted.id,
      model: accepted.model,
      version: accepted.version,
      status: accepted.status,
      record: undefined,
    };
  }

  /**
   * Submits many requests in one `infer:bulk` call. `ids` has one entry per body, in order; `null`
   * where admission control refused that one (its problem is in `rejected`). Throws when the body is
   * refused as a whole (a malformed request, or every request refused).
   */
  async submitBulk(
    model: string,
    bodies: InferRequestBody[],
    options: Omit<SubmitOptions, 'wait'> = {},
  ): Promise<BulkSubmission> {
    const path =
      options.version === undefined
        ? `/v1/models/${encodeURIComponent(model)}/infer:bulk`
        : `/v1/models/${encodeURIComponent(model)}/versions/${options.version}/infer:bulk`;
    const headers: Record<string, string> = { 'content-type': contentTypeOf(this.format) };
    // One key names the whole body: sent again with the same bodies, it answers the same ids.
    if (options.idempotencyKey !== undefined) headers['idempotency-key'] = options.idempotencyKey;
    const response = await this.send('POST', path, {
      headers,
      body: encodeBulkInferRequest(bodies, this.format),
      signal: options.signal,
    });
    return (await readBody(response)) as BulkSubmission;
  }

  /** The request record; with `wait`, the server holds the answer up to that many seconds for a terminal state. */
  async get(id: string, options: { wait?: number; signal?: AbortSignal } = {}): Promise<RequestRecord> {
    const query = options.wait === undefined ? '' : `?wait=${Math.max(0, Math.floor(options.wait))}`;
    const response = await this.send('GET', `/v1/requests/${encodeURIComponent(id)}${query}`, {
      signal: options.signal,
    });
    return readRecord(response);
  }

  /**
   * Long-polls until the request is terminal (succeeded, failed, cancelled or expired) and returns
   * that record; throws InferqTimeoutError when `timeoutMs` passes first.
   */
  async waitFor(id: string, timeoutMs: number, signal?: AbortSignal): Promise<RequestRecord> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const remainingMs = deadline - Date.now();
      const wait = Math.min(MAX_WAIT_SECONDS, Math.max(0, Math.ceil(remainingMs / 1000)));
      const record = await this.get(id, { wait, signal });
      if (TERMINAL_STATUSES.has(record.status)) return record;
      if (Date.now() >= deadline) throw new InferqTimeoutError(record, timeoutMs);
    }
  }

  /** Submits and waits for the terminal record. */
  async infer(
    model: string,
    body: InferRequestBody,
    options: Omit<SubmitOptions, 'wait'> & { timeoutMs?: number } = {},
  ): Promise<RequestRecord> {
    const timeoutMs = options.timeoutMs ?? 60_000;
    const started = Date.now();
    const submission = await this.submit(model, body, {
      version: options.version,
      idempotencyKey: options.idempotencyKey,
      signal: options.signal,
      wait: Math.min(MAX_WAIT_SECONDS, Math.floor(timeoutMs / 1000)),
    });
    if (submission.record !== undefined && TERMINAL_STATUSES.has(submission.record.status))
      return submission.record;
    return this.waitFor(submission.id, Math.max(0, timeoutMs - (Date.now() - started)), options.signal);
  }

  /** Cancels a request that has not started; a running or finished one answers 409 (InferqHttpError). */
  async cancel(id: string): Promise<RequestRecord> {
    return readRecord(await this.send('DELETE', `/v1/requests/${encodeURIComponent(id)}`));
  }

  async models(): Promise<ModelInfo[]> {
    const body = await readBody(await this.send('GET', '/v1/models', { accept: 'application/json' }));
    return (body as { models: ModelInfo[] }).models;
  }

  async model(name: string): Promise<ModelInfo> {
    const response = await this.send('GET', `/v1/models/${encodeURIComponent(name)}`, {
      accept: 'application/json',
    });
    return (await readBody(response)) as ModelInfo;
  }

  /**
   * The request's status changes, read from its Server-Sent Events stream; the last one is terminal
   * and carries the record. The iteration ends when the server closes the stream (when it ends
   * without a terminal event, `get(id)` tells the state). Leaving the loop early closes the connection.
   */
  async *events(id: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<RequestEvent> {
    const response = await this.send('GET', `/v1/requests/${encodeURIComponent(id)}/events`, {
      accept: 'text/event-stream',
      signal: options.signal,
    });
    if (response.body === null) return;
    for await (const event of readServerSentEvents(response.body)) {
      if (event.event === 'status') yield parseStatusEvent(event.data);
    }
  }

  private async send(
    method: string,
    path: string,
    init: {
      headers?: Record<string, string>;
      body?: Uint8Array;
      accept?: string;
      signal?: AbortSignal | undefined;
    } = {},
  ): Promise<Response> {
    const headers: Record<string, string> = {
      accept: init.accept ?? contentTypeOf(this.format),
      ...init.headers,
    };
    if (this.apiKey !== undefined) headers.authorization = `Bearer ${this.apiKey}`;
    const requestInit: RequestInit = { method, headers };
    if (init.body !== undefined) requestInit.body = init.body;
    if (init.signal !== undefined) requestInit.signal = init.signal;
    const response = await this.fetchImpl(`${this.baseUrl}${path}`, requestInit);
    if (!response.ok) throw await httpErrorFrom(response);
    return response;
  }
}

function formatOf(response: Response): WireFormat {
  return formatFromContentType(response.headers.get('content-type') ?? undefined) ?? 'json';
}

async function readRecord(response: Response): Promise<RequestRecord> {
  return decodeRecord(new Uint8Array(await response.arrayBuffer()), formatOf(response));
}

async function readBody(response: Response): Promise<unknown> {
  const bytes = new Uint8Array(await response.arrayBuffer());
  return formatOf(response) === 'msgpack'
    ? unpackStandard(bytes)
    : JSON.parse(new TextDecoder().decode(bytes));
}

async function httpErrorFrom(response: Response): Promise<InferqHttpError> {
  const text = await response.text().catch(() => '');
  let problem: unknown;
  try {
    problem = JSON.parse(text);
  } catch {
    problem = undefined;
  }
  return new InferqHttpError(
    response.status,
    isProblem(problem) ? problem : undefined,
    parseRetryAfter(response.headers.get('retry-after')),
    text,
  );
}

/** A status event's data: `{ id, status }`, or the whole record (JSON form) once terminal. */
function parseStatusEvent(data: string): RequestEvent {
  const value = JSON.parse(data) as { id?: unknown; status?: unknown };
  if (typeof value.id !== 'string' || typeof value.status !== 'string') {
    throw new Error(`status event without id and status: ${data.slice(0, 200)}`);
  }
  const status = value.status as RequestStatus;
  const record = TERMINAL_STATUSES.has(status)
    ? decodeRecord(new TextEncoder().encode(data), 'json')
    : undefined;
  return { id: value.id, status, record };
}
