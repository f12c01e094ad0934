import * as crypto from 'node:crypto';
import { ForbiddenError, UnauthorizedError } from '@inferq/protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AdminAuthenticator } from './admin-auth.ts';
import { ApiKeyAuthenticator } from './auth.ts';

vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return { ...actual, timingSafeEqual: vi.fn(actual.timingSafeEqual) };
});

const compare = vi.mocked(crypto.timingSafeEqual);

const ADMIN_KEY = 'admin-key-0123456789';
const API_KEYS = new Map([
  ['ops:key', 'ops'],
  ['acme-key', 'acme'],
]);
const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;

function authenticator(key: string | undefined, tenants = ['ops']): AdminAuthenticator {
  return new AdminAuthenticator({ key, tenants }, new ApiKeyAuthenticator(API_KEYS));
}

afterEach(() => {
  compare.mockClear();
});

describe('AdminAuthenticator', () => {
  it.each([
    ['the admin key as Bearer', `Bearer ${ADMIN_KEY}`, { kind: 'admin-key' }],
    ['the admin key as Basic password', basic('anyone', ADMIN_KEY), { kind: 'admin-key' }],
    ['an admin tenant key with a colon, as Basic', basic('x', 'ops:key'), { kind: 'tenant', tenant: 'ops' }],
    ['an admin tenant key as Bearer', 'Bearer ops:key', { kind: 'tenant', tenant: 'ops' }],
  ])('lets in %s, comparing it with the admin key and every API key', (_name, header, caller) => {
    expect(authenticator(ADMIN_KEY).check(header)).toEqual(caller);
    expect(compare).toHaveBeenCalledTimes(1 + API_KEYS.size);
  });

  it('refuses a non-admin tenant with 403, after the same comparisons', () => {
    expect(() => authenticator(ADMIN_KEY).check('Bearer acme-key')).toThrow(ForbiddenError);
    expect(compare).toHaveBeenCalledTimes(1 + API_KEYS.size);
  });

  it.each([
    undefined,
    '',
    'Bearer wrong',
    basic('admin', 'wrong'),
    basic('admin', ''),
    `Basic ${Buffer.from(ADMIN_KEY).toString('base64')}`,
    'Basic ***',
    `Digest ${ADMIN_KEY}`,
  ])('refuses %j with 401 and a Bearer and a Basic challenge', (header) => {
    let error: unknown;
    try {
      authenticator(ADMIN_KEY).check(header);
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(UnauthorizedError);
    expect((error as UnauthorizedError).challenges).toEqual([
      'Bearer',
      'Basic realm="inferq admin", charset="UTF-8"',
    ]);
  });

  it('lets tenants in without an admin key, and nobody when neither is configured', () => {
    expect(authenticator(undefined).check('Bearer ops:key')).toEqual({ kind: 'tenant', tenant: 'ops' });
    expect(() => authenticator(undefined).check(`Bearer ${ADMIN_KEY}`)).toThrow(UnauthorizedError);
    const off = authenticator(undefined, []);
    expect(off.configured).toBe(false);
    expect(() => off.check('Bearer ops:key')).toThrow(ForbiddenError);
  });
});
