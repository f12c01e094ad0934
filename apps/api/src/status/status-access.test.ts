import { ForbiddenError, UnauthorizedError } from '@inferq/protocol';
import { describe, expect, it } from 'vitest';
import { AdminAuthenticator } from '../admin-auth.ts';
import { ApiKeyAuthenticator } from '../auth.ts';
import { checkStatusAccess } from './status-routes.ts';

const ADMIN_KEY = 'admin-key-0123456789';
const API_KEYS = new Map([
  ['ops-key', 'ops'],
  ['acme-key', 'acme'],
]);

function auth(admin: { key?: string; tenants?: string[] }, apiKeys = API_KEYS): AdminAuthenticator {
  return new AdminAuthenticator(
    { key: admin.key, tenants: admin.tenants ?? [] },
    new ApiKeyAuthenticator(apiKeys),
  );
}

describe('checkStatusAccess', () => {
  it('lets everyone in while no admin credential is configured, with or without API keys', () => {
    expect(() => checkStatusAccess(auth({}, new Map()), undefined)).not.toThrow();
    expect(() => checkStatusAccess(auth({}), undefined)).not.toThrow();
    expect(() => checkStatusAccess(auth({}), 'Bearer whatever')).not.toThrow();
  });

  it('asks for the admin key or an admin tenant’s key once one is configured', () => {
    const configured = auth({ key: ADMIN_KEY, tenants: ['ops'] });
    expect(() => checkStatusAccess(configured, `Bearer ${ADMIN_KEY}`)).not.toThrow();
    const basic = `Basic ${Buffer.from(`me:${ADMIN_KEY}`).toString('base64')}`;
    expect(() => checkStatusAccess(configured, basic)).not.toThrow();
    expect(() => checkStatusAccess(configured, 'Bearer ops-key')).not.toThrow();
    expect(() => checkStatusAccess(configured, undefined)).toThrow(UnauthorizedError);
    expect(() => checkStatusAccess(configured, 'Bearer wrong-key')).toThrow(UnauthorizedError);
    expect(() => checkStatusAccess(configured, 'Bearer acme-key')).toThrow(ForbiddenError);
  });
});
