import { createHash } from 'node:crypto';
import { BadRequestError } from '@inferq/protocol';

/** Longest `Idempotency-Key` accepted (a UUID is 36 characters). */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

const KEY_CHARACTERS = /^[\x21-\x7e]+$/;

/**
 * The `Idempotency-Key` header: undefined when absent, else 1 to 255 visible ASCII characters. The
 * IETF draft sends it as a quoted string (`"8e03978e-..."`); the quotes are not part of the key, so
 * a bare token and its quoted form name the same request.
 */
export function parseIdempotencyKey(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  let key = header.trim();
  if (key.length >= 2 && key.startsWith('"') && key.endsWith('"')) key = key.slice(1, -1);
  if (key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_LENGTH || !KEY_CHARACTERS.test(key)) {
    throw new BadRequestError(
      `Idempotency-Key must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters without spaces`,
    );
  }
  return key;
}

/**
 * What makes two submissions "the same request" for an idempotency key: the route as called (model,
 * and the version only when the path names one, so a retry after a new default version still
 * replays), the body's format and its bytes as received. Hex SHA-256.
 */
export function submissionFingerprint(submission: {
  model: string;
  version: number | undefined;
  /** The body's format (a wire format, or `image` for a raw image body). */
  format: string;
  body: Uint8Array;
  /** An `infer:bulk` body: never the same request as a single submit of the same bytes. */
  bulk?: boolean;
}): string {
  const route = submission.bulk === true ? 'infer:bulk' : 'infer';
  return createHash('sha256')
    .update(`${route}\n${submission.model}\n${submission.version ?? ''}\n${submission.format}\n`)
    .update(submission.body)
    .digest('hex');
}

/**
 * The idempotency entry of request `index` of an `infer:bulk` body sent with `key`: the key itself
 * for the first (so a single submit reusing it is refused as a different request), the key and the
 * index after a space (which no key holds) for the others.
 */
export function bulkIdempotencyKey(key: string, index: number): string {
  return index === 0 ? key : `${key} ${index}`;
}
