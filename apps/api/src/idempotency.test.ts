import { BadRequestError } from '@inferq/protocol';
import { describe, expect, it } from 'vitest';
import { bulkIdempotencyKey, parseIdempotencyKey, submissionFingerprint } from './idempotency.ts';

describe('parseIdempotencyKey', () => {
  it('is undefined without the header', () => {
    expect(parseIdempotencyKey(undefined)).toBeUndefined();
  });

  it('takes a bare token or the quoted string of the IETF draft as the same key', () => {
    expect(parseIdempotencyKey('8e03978e-40d5-43e8-bc93-6894a57f9324')).toBe(
      '8e03978e-40d5-43e8-bc93-6894a57f9324',
    );
    expect(parseIdempotencyKey(' "8e03978e-40d5" ')).toBe('8e03978e-40d5');
    expect(parseIdempotencyKey('x'.repeat(255))).toBe('x'.repeat(255));
  });

  it.each([
    ['empty', ''],
    ['only quotes', '""'],
    ['too long', 'x'.repeat(256)],
    ['with a space', 'order 1'],
    ['two header values joined', 'a, b'],
    ['not ASCII', 'caf\u00e9'],
    ['a control character', 'a\tb'],
  ])('refuses a key that is %s with 400', (_, header) => {
    expect(() => parseIdempotencyKey(header)).toThrow(
      new BadRequestError('Idempotency-Key must be 1 to 255 visible ASCII characters without spaces'),
    );
  });
});

describe('submissionFingerprint', () => {
  const base = {
    model: 'ocr',
    version: undefined,
    format: 'json' as const,
    body: new TextEncoder().encode('{"inputs":{}}'),
  };

  it('is the hex SHA-256 of the route and body, the same for the same submission', () => {
    const fingerprint = submissionFingerprint(base);
    expect(fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(submissionFingerprint({ ...base, body: new TextEncoder().encode('{"inputs":{}}') })).toBe(
      fingerprint,
    );
  });

  it('differs when the model, the version in the path, the format or a body byte differs', () => {
    const fingerprint = submissionFingerprint(base);
    const others = [
      submissionFingerprint({ ...base, model: 'ocr2' }),
      submissionFingerprint({ ...base, version: 1 }),
      submissionFingerprint({ ...base, format: 'msgpack' }),
      submissionFingerprint({ ...base, body: new TextEncoder().encode('{"inputs":{} }') }),
    ];
    expect(new Set([fingerprint, ...others]).size).toBe(5);
  });
});

describe('bulkIdempotencyKey', () => {
  it('names the first request by the key itself and the others by a form no key can take', () => {
    expect(bulkIdempotencyKey('k', 0)).toBe('k');
    expect(bulkIdempotencyKey('k', 3)).toBe('k 3');
    expect(() => parseIdempotencyKey('k 3')).toThrow(/without spaces/);
  });

  it('fingerprints a bulk body apart from a single submit of the same bytes', () => {
    const submission = { model: 'm', version: undefined, format: 'json' as const, body: Buffer.from('{}') };
    expect(submissionFingerprint({ ...submission, bulk: true })).not.toBe(submissionFingerprint(submission));
  });
});
