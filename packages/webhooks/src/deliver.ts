/**
 * One delivery attempt: check the destination, connect only to the addresses that were checked,
 * POST, and report what happened. Redirects are never followed.
 */
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import {
  type DestinationGuard,
  DestinationRefusedError,
  hostOf,
  type ResolvedAddress,
} from './destination.ts';

export type AttemptOutcome =
  | { kind: 'delivered'; status: number }
  | {
      kind: 'failed';
      /** Short, loggable reason: `HTTP 503`, `no answer within 10000 ms`, `ECONNREFUSED ...`. */
      error: string;
      /** The HTTP status, when the receiver answered. */
      status?: number;
      /** Retrying cannot help: the destination is refused by policy. */
      permanent: boolean;
    };

export interface PostWebhookOptions {
  url: string;
  body: Uint8Array;
  headers: Record<string, string>;
  guard: DestinationGuard;
  timeoutMs: number;
  /** Keep-alive agents; without them each attempt opens its own connection. */
  agents?: { http: http.Agent; https: https.Agent };
}

export async function postWebhook(options: PostWebhookOptions): Promise<AttemptOutcome> {
  const { body, guard, timeoutMs } = options;
  const signal = AbortSignal.timeout(timeoutMs);
  const timedOut = `no answer within ${timeoutMs} ms`;
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    return { kind: 'failed', error: 'callback URL is not a URL', permanent: true };
  }
  let addresses: ResolvedAddress[];
  try {
    addresses = await untilAborted(guard.resolve(url), signal);
  } catch (error: unknown) {
    if (error instanceof DestinationRefusedError)
      return { kind: 'failed', error: error.message, permanent: true };
    return { kind: 'failed', error: signal.aborted ? timedOut : `DNS: ${describe(error)}`, permanent: false };
  }

  const secure = url.protocol === 'https:';
  const client = secure ? https : http;
  const agent = secure ? options.agents?.https : options.agents?.http;
  return new Promise<AttemptOutcome>((resolve) => {
    const request = client.request(
      {
        method: 'POST',
        // The name, not an address: TLS sends it as SNI and checks the certificate against it; only
        // the connection goes to the pinned address.
        hostname: hostOf(url),
        port: url.port === '' ? undefined : Number(url.port),
        path: `${url.pathname}${url.search}`,
        headers: { ...options.headers, host: url.host, 'content-length': String(body.byteLength) },
        lookup: pinnedLookup(addresses),
        agent: agent ?? false,
        signal,
      },
      (response) => {
        const status = response.statusCode ?? 0;
        // Drained, not read: the answer's body means nothing to us, and the socket can be reused.
        response.resume();
        if (status >= 200 && status < 300) {
          resolve({ kind: 'delivered', status });
        } else if (status >= 300 && status < 400) {
          resolve({
            kind: 'failed',
            error: `HTTP ${status}: redirect not followed`,
            status,
            permanent: false,
          });
        } else {
          resolve({ kind: 'failed', error: `HTTP ${status}`, status, permanent: false });
        }
      },
    );
    request.on('error', (error) => {
      resolve({ kind: 'failed', error: signal.aborted ? timedOut : describe(error), permanent: false });
    });
    request.end(body);
  });
}

/**
 * A DNS lookup that answers only with the addresses already checked: the connection cannot go to an
 * address the name resolves to a moment later (DNS rebinding).
 */
function pinnedLookup(addresses: readonly ResolvedAddress[]): LookupFunction {
  return (_hostname, options, callback) => {
    const wanted = options.family === 4 || options.family === 6 ? options.family : undefined;
    const usable = addresses.filter((a) => wanted === undefined || a.family === wanted);
    if (usable.length === 0) {
      const error = Object.assign(new Error(`no checked IPv${wanted} address`), { code: 'ENOTFOUND' });
      callback(error, '', 0);
      return;
    }
    if (options.all) {
      (callback as unknown as (error: null, all: ResolvedAddress[]) => void)(null, usable);
    } else {
      const [first] = usable as [ResolvedAddress];
      callback(null, first.address, first.family);
    }
  };
}

function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' && !error.message.includes(code)
      ? `${code}: ${error.message}`
      : error.message;
  }
  return String(error);
}
