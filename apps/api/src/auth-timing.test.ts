/**
 * The key check must not leak, through its duration, how much of a guess was right. Timing itself
 * is not measured (tests never assert timing); what makes it constant is asserted instead: every
 * presented key, right or wrong, short or long, is compared with every configured key, as SHA-256
 * digests of equal length, by crypto.timingSafeEqual and nothing else.
 */
import * as crypto from 'node:crypto';
import { UnauthorizedError } from '@inferq/protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiKeyAuthenticator } from './auth.ts';

vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return { ...actual, timingSafeEqual: vi.fn(actual.timingSafeEqual) };
});

const compare = vi.mocked(crypto.timingSafeEqual);
const sha256 = (text: string) => crypto.createHash('sha256').update(text, 'utf8').digest();

const KEYS = new Map([
  ['k', 'short'],
  ['a-much-longer-key-of-the-second-tenant-0123456789', 'long'],
  ['key-c', 'third'],
]);

afterEach(() => {
  compare.mockClear();
});

describe('API key comparison', () => {
  it.each([
    ['the right short key', 'k', 'short'],
    ['the right long key', 'a-much-longer-key-of-the-second-tenant-0123456789', 'long'],
    ['the last key', 'key-c', 'third'],
    ['a prefix of a key', 'key-', undefined],
    ['a key with one more character', 'key-cc', undefined],
    ['a 4 KiB key', 'x'.repeat(4096), undefined],
  ])('compares %s with every configured key as 32-byte digests', (_name, presented, tenant) => {
    const auth = new ApiKeyAuthenticator(KEYS);
    const header = `Bearer ${presented}`;
    if (tenant === undefined) expect(() => auth.tenantOf(header)).toThrow(UnauthorizedError);
    else expect(auth.tenantOf(header)).toBe(tenant);

    expect(compare).toHaveBeenCalledTimes(KEYS.size);
    const presentedDigest = sha256(presented);
    const configured = [...KEYS.keys()].map((key) => sha256(key).toString('hex')).sort();
    const seen: string[] = [];
    for (const [a, b] of compare.mock.calls) {
      const [left, right] = [Buffer.from(a as Uint8Array), Buffer.from(b as Uint8Array)];
      expect(left.length).toBe(32);
      expect(right.length).toBe(32);
      // One side is a configured key's digest, the other the presented key's.
      expect(right.equals(presentedDigest) || left.equals(presentedDigest)).toBe(true);
      seen.push((right.equals(presentedDigest) ? left : right).toString('hex'));
    }
    expect(seen.sort()).toEqual(configured);
  });

  it('does not look at the key at all when the header is not a bearer token', () => {
    const auth = new ApiKeyAuthenticator(KEYS);
    expect(() => auth.tenantOf('Basic aw==')).toThrow(UnauthorizedError);
    expect(compare).not.toHaveBeenCalled();
  });
});
