import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Logger } from '@inferq/observability';
import {
  contentTypeOf,
  encodeRecord,
  encodeRecordJsonPieces,
  InferqError,
  outputElements,
  packStandard,
  type RequestRecord,
  toProblem,
  UnauthorizedError,
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

/**
 * Outputs of more elements than this are sent in JSON piece by piece (`encodeRecordJsonPieces`): in
 * one go, the text of a 16 MB float32 result blocked the event loop for about a second.
 */
const JSON_STREAM_ELEMENTS = 65_536;

/**
 * A record as the answer. MessagePack copies the outputs' bytes (fast whatever their size); JSON
 * writes a number per element, so a large result is written in pieces with the event loop free
 * between them (chunked, no Content-Length), each piece after the socket took the one before.
 */
export async function sendRecord(
  res: ServerResponse,
  status: number,
  record: RequestRecord,
  format: WireFormat,
): Promise<void> {
  if (format !== 'json' || outputElements(record) <= JSON_STREAM_ELEMENTS) {
    sendBytes(res, status, encodeRecord(record, format), format);
    return;
  }
  res.writeHead(status, { 'Content-Type': contentTypeOf(format), Vary: 'Accept' });
  await writePieces(res, encodeRecordJsonPieces(record));
  res.end();
}

/** Writes each piece once the loop had a turn and the socket took the last one; stops if it closes. */
export async function writePieces(res: ServerResponse, pieces: Iterable<string>): Promise<void> {
  for (const piece of pieces) {
    if (res.destroyed) return;
    const drained = res.write(piece);
    await new Promise<void>((resolve) => {
      if (drained) {
        setImmediate(resolve);
        return;
      }
      const done = (): void => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });
  }
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
  const headers: OutgoingHttpHeaders = {
    'Content-Type': 'application/problem+json; charset=utf-8',
    'Content-Length': body.byteLength,
  };
  if (normalized instanceof InferqError && normalized.retryAfterSeconds !== undefined) {
    headers['Retry-After'] = String(normalized.retryAfterSeconds);
  }
  if (problem.status === 401) {
    headers['WWW-Authenticate'] =
      normalized instanceof UnauthorizedError ? [...normalized.challenges] : 'Bearer';
  }
  res.writeHead(problem.status, headers);
  res.end(body);
}
