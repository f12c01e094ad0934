import { BadRequestError, PayloadTooLargeError } from '@inferq/protocol';
import express, { type RequestHandler } from 'express';

/**
 * Reads a request body into one Buffer as `req.body`, refusing more than `limit` bytes (413). A body
 * sent as is (no Content-Encoding, the usual case) is read here: with a Content-Length it lands
 * straight in a buffer of that size, each chunk copied once, and nothing else is parsed. A compressed
 * one goes to body-parser's raw reader, which inflates gzip, deflate and br with the same limit.
 */
export function readRawBody(limit: number): RequestHandler {
  const inflating = express.raw({ type: () => true, limit });
  return (req, res, next) => {
    const encoding = req.headers['content-encoding'];
    if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
      inflating(req, res, next);
      return;
    }
    const declared = req.headers['content-length'];
    const length = declared === undefined ? undefined : Number(declared);
    if (length !== undefined && length > limit) {
      next(tooLarge(limit));
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
        next(error);
        return;
      }
      req.body = whole ?? (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, received));
      next();
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
  };
}

function tooLarge(limit: number): PayloadTooLargeError {
  return new PayloadTooLargeError(`the body is larger than the limit of ${limit} bytes (MAX_BODY_BYTES)`);
}
