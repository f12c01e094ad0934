import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signedHeaders, signWebhook, verifyWebhook } from './signature.ts';

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('signWebhook', () => {
  it('reproduces the Standard Webhooks specification test vector', () => {
    // Published with the specification's reference libraries: a receiver using any of them accepts ours.
    const key = Buffer.from('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'base64');
    expect(signWebhook(key, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, utf8('{"test": 2432232314}'))).toBe(
      'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    );
  });

  it('is base64 HMAC-SHA256 of "<id>.<timestamp>.<body>"', () => {
    const key = Buffer.alloc(32, 7);
    const body = utf8('{"id":"abc","status":"succeeded"}');
    const expected = createHmac('sha256', key)
      .update('abc.1700000000.{"id":"abc","status":"succeeded"}')
      .digest('base64');
    expect(signWebhook(key, 'abc', 1700000000, body)).toBe(`v1,${expected}`);
    expect(signedHeaders(key, 'abc', 1700000000, body)).toEqual({
      'webhook-id': 'abc',
      'webhook-timestamp': '1700000000',
      'webhook-signature': `v1,${expected}`,
    });
  });
});

describe('verifyWebhook', () => {
  const key = Buffer.alloc(32, 1);
  const body = utf8('{"id":"r1"}');
  const headers = signedHeaders(key, 'r1', 1700000000, body);

  it('accepts a matching signature within the tolerance', () => {
    expect(verifyWebhook(key, headers, body, 1700000000)).toBe(true);
    expect(verifyWebhook(key, headers, body, 1700000300)).toBe(true);
    expect(
      verifyWebhook(
        key,
        { ...headers, 'webhook-signature': `v1,bm9wZQ== ${headers['webhook-signature']}` },
        body,
        1700000000,
      ),
    ).toBe(true);
  });

  it.each([
    ['another body', { headers, body: utf8('{"id":"r2"}'), now: 1700000000 }],
    ['another id', { headers: { ...headers, 'webhook-id': 'r2' }, body, now: 1700000000 }],
    [
      'another timestamp',
      { headers: { ...headers, 'webhook-timestamp': '1700000001' }, body, now: 1700000000 },
    ],
    ['a stale timestamp', { headers, body, now: 1700000301 }],
    [
      'a garbled signature',
      { headers: { ...headers, 'webhook-signature': 'v1,xyz' }, body, now: 1700000000 },
    ],
  ])('rejects %s', (_name, { headers: h, body: b, now }) => {
    expect(verifyWebhook(key, h, b, now)).toBe(false);
  });

  it('rejects another key', () => {
    expect(verifyWebhook(Buffer.alloc(32, 2), headers, body, 1700000000)).toBe(false);
  });
});
