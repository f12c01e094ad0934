import { randomFillSync } from 'node:crypto';

/** 128 random bits in base64url without padding. */
export const REQUEST_ID_LENGTH = 22;

// 22 base64url characters carry 132 bits; the last one holds only 2 of the 128, so its low 4 bits
// are zero and it is one of A, Q, g, w. Checking that keeps ids canonical (one spelling per id).
const REQUEST_ID = /^[A-Za-z0-9_-]{21}[AQgw]$/;

const ID_BYTES = 16;
// One getrandom call per 256 ids rather than one per id (as crypto.randomUUID does): the bytes are
// the same CSPRNG output, handed out once each.
const pool = Buffer.alloc(ID_BYTES * 256);
let poolOffset = pool.length;

/** An unguessable request id (docs/api.md asks for at least 122 random bits; this has 128). */
export function newRequestId(): string {
  if (poolOffset === pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const id = pool.toString('base64url', poolOffset, poolOffset + ID_BYTES);
  poolOffset += ID_BYTES;
  return id;
}

export function isRequestId(value: unknown): value is string {
  return typeof value === 'string' && REQUEST_ID.test(value);
}
