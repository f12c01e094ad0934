/**
 * Webhook signatures as the Standard Webhooks specification defines them (docs/api.md), so a receiver
 * can verify ours with any of that specification's libraries: `webhook-signature` is `v1,` and the
 * base64 HMAC-SHA256, keyed with the decoded secret, of `<webhook-id>.<webhook-timestamp>.<body>`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface SignedHeaders {
  'webhook-id': string;
  /** Unix seconds of this attempt; a receiver rejects timestamps too far from its clock. */
  'webhook-timestamp': string;
  'webhook-signature': string;
}

/** `v1,<base64 signature>` of one message. */
export function signWebhook(key: Uint8Array, id: string, timestampSeconds: number, body: Uint8Array): string {
  const mac = createHmac('sha256', key);
  mac.update(`${id}.${timestampSeconds}.`);
  mac.update(body);
  return `v1,${mac.digest('base64')}`;
}

export function signedHeaders(
  key: Uint8Array,
  id: string,
  timestampSeconds: number,
  body: Uint8Array,
): SignedHeaders {
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestampSeconds),
    'webhook-signature': signWebhook(key, id, timestampSeconds, body),
  };
}

/**
 * What a receiver does (used by inferq's own tests, and a reference for docs/webhooks.md): true when
 * one of the space-separated `v1,` signatures matches and the timestamp is within `toleranceSeconds`
 * of `nowSeconds`.
 */
export function verifyWebhook(
  key: Uint8Array,
  headers: SignedHeaders,
  body: Uint8Array,
  nowSeconds: number,
  toleranceSeconds = 300,
): boolean {
  const timestamp = Number(headers['webhook-timestamp']);
  if (!Number.isInteger(timestamp) || Math.abs(nowSeconds - timestamp) > toleranceSeconds) return false;
  const expected = Buffer.from(signWebhook(key, headers['webhook-id'], timestamp, body));
  return headers['webhook-signature'].split(' ').some((candidate) => {
    const given = Buffer.from(candidate);
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}
