import { timingSafeEqual } from 'node:crypto';
import type { AdminConfig } from '@inferq/config';
import { ForbiddenError, UnauthorizedError } from '@inferq/protocol';
import { type ApiKeyAuthenticator, bearerToken, sha256 } from './auth.ts';

/** Bearer as on /v1, and Basic so that a browser asks for the key (user name ignored, key as password). */
export const ADMIN_CHALLENGES = ['Bearer', 'Basic realm="inferq admin", charset="UTF-8"'] as const;

/** Who was let in: the admin key, or an admin tenant (for logs). */
export type AdminCaller = { kind: 'admin-key' } | { kind: 'tenant'; tenant: string };

/**
 * Lets the admin routes (Bull Board) be opened with ADMIN_KEY or the API key of a tenant named in
 * ADMIN_TENANTS, sent as `Authorization: Bearer <key>` or as the password of HTTP Basic. Like
 * ApiKeyAuthenticator, a presented key is compared as a SHA-256 digest with `timingSafeEqual`
 * against the admin key and every API key, whichever matches, so the time taken tells nothing.
 */
export class AdminAuthenticator {
  private readonly keyDigest: Buffer | undefined;
  private readonly tenants: ReadonlySet<string>;
  private readonly apiKeys: ApiKeyAuthenticator;

  constructor(admin: AdminConfig, apiKeys: ApiKeyAuthenticator) {
    this.keyDigest = admin.key === undefined ? undefined : sha256(admin.key);
    this.tenants = new Set(admin.tenants);
    this.apiKeys = apiKeys;
  }

  /** Whether any credential can open the admin routes. */
  get configured(): boolean {
    return this.keyDigest !== undefined || this.tenants.size > 0;
  }

  /**
   * The admin caller, or: 403 when no admin credential is configured or the key is a non-admin
   * tenant's; 401 (with a Bearer and a Basic challenge) when the key is missing or unknown.
   */
  check(authorization: string | undefined): AdminCaller {
    if (!this.configured) {
      throw new ForbiddenError('the admin routes are off: set ADMIN_KEY or ADMIN_TENANTS to open them');
    }
    const key = presentedKey(authorization);
    if (key === undefined) {
      throw new UnauthorizedError(
        'send the admin key as `Authorization: Bearer <key>` or as the password of HTTP Basic',
        { challenges: ADMIN_CHALLENGES },
      );
    }
    // Both comparisons always run: which one matched must not show in the time taken.
    const isAdminKey = this.keyDigest !== undefined && timingSafeEqual(this.keyDigest, sha256(key));
    const tenant = this.apiKeys.tenantOfKey(key);
    if (isAdminKey) return { kind: 'admin-key' };
    if (tenant === undefined) {
      throw new UnauthorizedError('the admin key is not valid', { challenges: ADMIN_CHALLENGES });
    }
    if (!this.tenants.has(tenant)) throw new ForbiddenError('this API key is not an admin tenant’s key');
    return { kind: 'tenant', tenant };
  }
}

/** The key of a Bearer header, or the password of a Basic one (`user:password`, base64 of UTF-8). */
function presentedKey(authorization: string | undefined): string | undefined {
  const bearer = bearerToken(authorization);
  if (bearer !== undefined) return bearer;
  const basic =
    authorization === undefined ? undefined : /^Basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(authorization)?.[1];
  if (basic === undefined) return undefined;
  const decoded = Buffer.from(basic, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const password = colon < 0 ? '' : decoded.slice(colon + 1);
  return password === '' ? undefined : password;
}
