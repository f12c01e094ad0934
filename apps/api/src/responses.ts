import type { ServerResponse } from 'node:http';
import type { Logger } from '@inferq/observability';
import {
  contentTypeOf,
  encodeRecord,
  InferqError,
  packStandard,
  type RequestRecord,
  toProblem,
  type WireFormat,
} from '@inferq/protocol';
import { normalizeError } from './errors.ts';

/** The bytes of an answer, straight to Node's response: every route writes its answers through here. */
export function sendBytes(res: ServerResponse, status: number, bytes: Uint8Array, format: WireFormat): void {
  // The answer depends on Accept (negotiated), and nothing else sets Vary on these routes.
  res.writeHead(status, {
    'Content-Type': contentTypeOf(format),
    Vary: 'Accept',
    'Content-Length': bytes.byteLength,
  });
  res.end(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
}

export function sendRecord(
  res: ServerResponse,
  status: number,
  record: RequestRecord,
  format: WireFormat,
): void {
  sendBytes(res, status, encodeRecord(record, format), format);
}

export function sendValue(res: ServerResponse, status: number, value: object, format: WireFormat): void {
  sendBytes(
    res,
    status,
    format === 'json' ? Buffer.from(JSON.stringify(value)) : packStandard(value),
    format,
  );
}

/**
 * The single place errors become responses: RFC 9457 problem+json, Retry-After where the error says
 * when to come back, details only for errors we raised on purpose (never a stack trace).
 */
export function sendProblem(
  error: unknown,
  request: { method?: string | undefined; url?: string | undefined },
  res: ServerResponse,
  logger: Logger,
): void {
  const normalized = normalizeError(error);
  const problem = toProblem(normalized);
  // A 503 is a known state (Redis down, a model unavailable) that /readyz, metrics and the process
  // that saw it already report; only our own fault (500) is an error here.
  if (problem.status >= 500 && problem.status !== 503) {
    logger.error({ err: error, method: request.method, url: request.url }, 'request failed');
  } else {
    logger.debug({ method: request.method, url: request.url, problem }, 'request rejected');
  }
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = Buffer.from(JSON.stringify(problem));
  const headers: Record<string, string | number> = {
    'Content-Type': 'application/problem+json; charset=utf-8',
    'Content-Length': body.byteLength,
  };
  if (normalized instanceof InferqError && normalized.retryAfterSeconds !== undefined) {
    headers['Retry-After'] = String(normalized.retryAfterSeconds);
  }
  if (problem.status === 401) headers['WWW-Authenticate'] = 'Bearer';
  res.writeHead(problem.status, headers);
  res.end(body);
}
