import type { IncomingMessage, ServerResponse } from 'node:http';
import { BadRequestError, PayloadTooLargeError } from '@inferq/protocol';
import express from 'express';

/** Reads the whole body of a request (see readRawBody). */
export type BodyReader = (req: IncomingMessage, res: ServerResponse) => Promise<Buffer>;

/**
 * Reads a request body into one Buffer, refusing more than `limit` bytes (413). A body
 * sent as is (no Content-Encoding, the usual case) is read here: with a Content-Length it lands
 * straight in a buffer of that size, each chunk copied once, and nothing else is parsed. A compressed
 * one goes to body-parser's raw reader, which inflates gzip, deflate and br with the same limit.
 */
export function readRawBody(limit: number): BodyReader {
  const inflating = express.raw({ type: () => true, limit });
  return (req, res) =>
    new Promise((resolve, reject) => {
      const encoding = req.headers['content-encoding'];
      if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
        // body-parser's reader is connect middleware: it leaves the inflated bytes in `req.body`.
        const parsed = req as IncomingMessage & { body?: unknown };
        inflating(parsed as never, res as never, (error?: unknown) => {
          if (error !== undefined) reject(error);
          else resolve(Buffer.isBuffer(parsed.body) ? parsed.body : Buffer.alloc(0));
        });
        return;
      }
      readPlain(req, limit, resolve, reject);
    });
}

/** A body sent as is: into a buffer of its Content-Length when there is one, each chunk copied once. */
function readPlain(
  req: IncomingMessage,
  limit: number,
  resolve: (body: Buffer) => void,
  reject: (error: Error) => void,
): void {
  const declared = req.headers['content-length'];
  const length = declared === undefined ? undefined : Number(declared);
  if (length !== undefined && length > limit) {
    reject(tooLarge(limit));
    return;
  }
  const whole = length === undefined ? undefined : Buffer.allocUnsafe(length);
  const chunks: Buffer[] = [];
  let received = 0;
  let settled = false;
  const settle = (error?: Error): void => {
    if (settled) return;
    settled = true;
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('error', onError);
    req.off('close', onClose);
    if (error !== undefined) {
      // Whatever else the client sends is not read.
      req.unpipe();
      req.pause();
      reject(error);
      return;
    }
    resolve(whole ?? (chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, received)));
  };
  const onData = (chunk: Buffer): void => {
    if (received + chunk.length > (whole?.length ?? limit)) {
      settle(
        whole === undefined
          ? tooLarge(limit)
          : new BadRequestError('the body is longer than its Content-Length'),
      );
      return;
    }
    if (whole === undefined) chunks.push(chunk);
    else chunk.copy(whole, received);
    received += chunk.length;
  };
  const onEnd = (): void => {
    if (whole !== undefined && received !== whole.length) {
      settle(new BadRequestError('the body length does not match Content-Length'));
      return;
    }
    settle();
  };
  const onError = (): void => settle(new BadRequestError('the client aborted the request body'));
  const onClose = (): void => {
    if (!req.complete) onError();
  };
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('error', onError);
  req.on('close', onClose);
}

function tooLarge(limit: number): PayloadTooLargeError {
  return new PayloadTooLargeError(`the body is larger than the limit of ${limit} bytes (MAX_BODY_BYTES)`);
}
