import { createHash, timingSafeEqual } from 'node:crypto';
import { UnauthorizedError } from '@inferq/protocol';

/** The tenant of every caller when API_KEYS is unset. */
export const PUBLIC_TENANT = 'public';

/**
 * Maps an `Authorization: Bearer <key>` header to its tenant. Keys are compared as SHA-256 digests
 * with `timingSafeEqual` (equal lengths whatever the key), and every configured key is compared on
 * every call, so neither the time taken nor an early exit tells an attacker how close a guess was.
 */
export class ApiKeyAuthenticator {
  private readonly keys: readonly { digest: Buffer; tenant: string }[] | undefined;

  /** `apiKeys`: key -> tenant; undefined leaves the API open to tenant `public`. */
  constructor(apiKeys: ReadonlyMap<string, string> | undefined) {
    this.keys =
      apiKeys === undefined
        ? undefined
        : [...apiKeys].map(([key, tenant]) => ({ digest: sha256(key), tenant }));
  }

  get enabled(): boolean {
    return this.keys !== undefined;
  }

  /** The caller's tenant; throws UnauthorizedError when keys are required and this one is missing or wrong. */
  tenantOf(authorization: string | undefined): string {
    if (this.keys === undefined) return PUBLIC_TENANT;
    const token = bearerToken(authorization);
    if (token === undefined) throw new UnauthorizedError('send the API key as `Authorization: Bearer <key>`');
    const tenant = this.tenantOfKey(token);
    if (tenant === undefined) throw new UnauthorizedError('the API key is not valid');
    return tenant;
  }

  /** The tenant of a configured key; undefined for any other key, or when no keys are configured. */
  tenantOfKey(key: string): string | undefined {
    if (this.keys === undefined) return undefined;
    const presented = sha256(key);
    let tenant: string | undefined;
    for (const candidate of this.keys) {
      if (timingSafeEqual(candidate.digest, presented)) tenant = candidate.tenant;
    }
    return tenant;
  }
}

/** The key of an `Authorization: Bearer <key>` header; undefined for a missing or other header. */
export function bearerToken(authorization: string | undefined): string | undefined {
  return authorization === undefined ? undefined : /^Bearer +(\S+) *$/i.exec(authorization)?.[1];
}

export function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
