import { UnauthorizedError } from '@inferq/protocol';
import { describe, expect, it } from 'vitest';
import { ApiKeyAuthenticator, PUBLIC_TENANT } from './auth.ts';

describe('ApiKeyAuthenticator', () => {
  it('lets everyone in as the public tenant when no keys are configured', () => {
    const auth = new ApiKeyAuthenticator(undefined);
    expect(auth.enabled).toBe(false);
    expect(auth.tenantOf(undefined)).toBe(PUBLIC_TENANT);
    expect(auth.tenantOf('Bearer anything')).toBe(PUBLIC_TENANT);
  });

  it('maps each key to its tenant', () => {
    const auth = new ApiKeyAuthenticator(
      new Map([
        ['key-a', 'acme'],
        ['key:g', 'globex'],
      ]),
    );
    expect(auth.tenantOf('Bearer key-a')).toBe('acme');
    expect(auth.tenantOf('bearer   key:g ')).toBe('globex');
  });

  it.each([
    undefined,
    '',
    'key-a',
    'Basic key-a',
    'Bearer',
    'Bearer key-b',
    'Bearer key-a extra',
    'Bearer key-',
  ])('refuses %j', (header) => {
    const auth = new ApiKeyAuthenticator(new Map([['key-a', 'acme']]));
    expect(() => auth.tenantOf(header)).toThrow(UnauthorizedError);
  });
});
