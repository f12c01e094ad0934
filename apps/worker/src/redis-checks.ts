import type { Logger } from '@inferq/observability';
import type { Redis } from 'ioredis';

/**
 * An evicted record, payload or queue stream loses requests silently, so a worker refuses to start
 * unless the eviction policy is `noeviction`. Managed services that forbid CONFIG get a warning instead.
 */
export async function assertRedisIsDurable(redis: Redis, logger: Logger): Promise<void> {
  let policy: string | undefined;
  try {
    const reply = (await redis.config('GET', 'maxmemory-policy')) as string[];
    policy = reply[1];
  } catch (error) {
    logger.warn({ err: error }, 'cannot read maxmemory-policy (CONFIG refused); make sure it is noeviction');
    return;
  }
  if (policy !== 'noeviction') {
    throw new Error(
      `Redis maxmemory-policy is ${policy}; inferq needs noeviction (queued requests would be evicted)`,
    );
  }
}
