import { randomBytes } from 'node:crypto';

/** 128 random bits in base64url without padding. */
export const REQUEST_ID_LENGTH = 22;

// 22 base64url characters carry 132 bits; the last one holds only 2 of the 128, so its low 4 bits
// are zero and it is one of A, Q, g, w. Checking that keeps ids canonical (one spelling per id).
const REQUEST_ID = /^[A-Za-z0-9_-]{21}[AQgw]$/;

/** An unguessable request id (API.md asks for at least 122 random bits; this has 128). */
export function newRequestId(): string {
  return randomBytes(16).toString('base64url');
}

export function isRequestId(value: unknown): value is string {
  return typeof value === 'string' && REQUEST_ID.test(value);
}
