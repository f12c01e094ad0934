import { describe, expect, it } from 'vitest';
import { admissionArgs, admissionKeys, hashOf, rejectionOf } from './admission.ts';
import { keysFor } from './keys.ts';
import type { SubmitParams } from './types.ts';

const keys = keysFor('{t}');
const params: SubmitParams = {
  id: 'r1',
  model: 'ocr',
  version: 3,
  tenant: 'acme',
  cacheKey: 'c',
  useCache: true,
  cacheTtlSeconds: 60,
  payload: new Uint8Array(),
  now: 1_000,
};
const admission = {
  maxQueueDepth: 5,
  rateLimit: { perSecond: 0.5, burst: 2 },
  idempotency: { key: 'order-1', fingerprint: 'f00d', ttlSeconds: 600 },
};

describe('submit script arguments', () => {
  it('names the queued set of the model version and the tenant-scoped idempotency and bucket keys', () => {
    expect(admissionKeys(keys, { ...params, admission })).toEqual([
      '{t}:queued:ocr.v3',
      '{t}:idem:acme:order-1',
      '{t}:rate:acme',
    ]);
  });

  it('passes the limits, the fingerprint and the deadline; zeros and "" turn each check off', () => {
    expect(admissionArgs({ ...params, admission, deadline: 9_000 })).toEqual([5, 0.5, 2, 'f00d', 600, 9_000]);
    expect(admissionArgs(params)).toEqual([0, 0, 0, '', 0, 0]);
  });
});

describe('rejectionOf', () => {
  const p = { ...params, admission };

  it('reads each rejection the script answers, with the limits that caused it', () => {
    expect(rejectionOf([Buffer.from('rejected'), Buffer.from('queue-full'), 1, 5], p)).toEqual({
      reason: 'queue-full',
      retryAfterSeconds: 1,
      depth: 5,
      maxQueueDepth: 5,
    });
    expect(rejectionOf([Buffer.from('rejected'), Buffer.from('rate-limited'), 2], p)).toEqual({
      reason: 'rate-limited',
      retryAfterSeconds: 2,
      perSecond: 0.5,
      burst: 2,
    });
    expect(rejectionOf([Buffer.from('rejected'), Buffer.from('idempotency-key-reused')], p)).toEqual({
      reason: 'idempotency-key-reused',
      key: 'order-1',
    });
  });

  it('refuses a reason it does not know', () => {
    expect(() => rejectionOf([Buffer.from('rejected'), Buffer.from('tired')], p)).toThrow(
      'submit script rejected for an unknown reason: tired',
    );
  });
});

describe('hashOf', () => {
  it('pairs a flat HGETALL reply into fields', () => {
    const hash = hashOf([Buffer.from('status'), Buffer.from('queued'), Buffer.from('id'), Buffer.from('r1')]);
    expect(Object.fromEntries(Object.entries(hash).map(([k, v]) => [k, v.toString()]))).toEqual({
      status: 'queued',
      id: 'r1',
    });
  });
});
