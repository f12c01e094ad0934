/**
 * How `inferq submit --bulk` cuts its inputs into `infer:bulk` calls, and the Idempotency-Key of
 * each call.
 *
 * The API keys idempotency per bulk body, not per request (docs/api.md, "Headers"): the body's
 * bytes are its fingerprint, and request `i` of the body is remembered under the key and `i`. The
 * same key with any other body (a subset of the requests, another order) is refused, and a new key
 * for a request already accepted would run it twice. So a chunk is the unit of idempotency: its
 * members depend only on the inputs (their order, count and sizes), never on what an earlier run
 * finished, and its key only on the members' identities and contents. A resumed run sends a chunk
 * that has unfinished members again whole, under the same key: the API answers the ids of the
 * requests it accepted before (finished or not, nothing runs twice) and accepts the others.
 */
import { createHash } from 'node:crypto';
import type { WireFormat } from '@inferq/protocol';
import { type InputRef, inputName } from './inputs.ts';

export interface ChunkLimits {
  /** Requests a chunk holds at most (the API's MAX_BULK_REQUESTS, 64 by default). */
  maxRequests: number;
  /** Input bytes a chunk holds at most, below the API's MAX_BODY_BYTES; a larger input goes alone. */
  maxBytes: number;
}

/**
 * Groups inputs, in order, into chunks of at most `maxRequests` inputs and `maxBytes` bytes. Only
 * the inputs decide where a chunk ends, so every run cuts the same inputs the same way.
 */
export async function* planChunks<T extends { bytes: number }>(
  inputs: AsyncIterable<T>,
  limits: ChunkLimits,
): AsyncGenerator<T[]> {
  let chunk: T[] = [];
  let bytes = 0;
  for await (const input of inputs) {
    if (chunk.length >= limits.maxRequests || (chunk.length > 0 && bytes + input.bytes > limits.maxBytes)) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
    chunk.push(input);
    bytes += input.bytes;
  }
  if (chunk.length > 0) yield chunk;
}

/** Where a chunk goes: what the API's fingerprint of a bulk body depends on besides the body. */
export interface BulkTarget {
  model: string;
  /** The version named in the path; undefined for the model's default version. */
  version: number | undefined;
  format: WireFormat;
}

/**
 * The Idempotency-Key of the bulk call that carries `members`: `inferq-bulk-` and a SHA-256 of the
 * target and each member's name and content hash (76 visible ASCII characters, within the API's
 * 255). The same members to the same target always get the same key; any change of one, another.
 */
export function chunkIdempotencyKey(
  target: BulkTarget,
  members: readonly { ref: InputRef; sha256: string }[],
): string {
  const hash = createHash('sha256').update(
    `inferq bulk v1\n${target.model}\n${target.version ?? ''}\n${target.format}\n`,
  );
  for (const member of members) hash.update(`${inputName(member.ref)}\n${member.sha256}\n`);
  return `inferq-bulk-${hash.digest('hex')}`;
}
