import type { Logger } from '@inferq/observability';
import { isCluster, type RedisConnection } from '@inferq/store';

/**
 * An evicted record, payload or queue stream loses requests silently, so a worker refuses to start
 * unless the eviction policy is `noeviction` (on a cluster, on every master: a failover or a
 * resharding may move the prefix's slot to any of them). Managed services that forbid CONFIG get a
 * warning instead.
 */
export async function assertRedisIsDurable(redis: RedisConnection, logger: Logger): Promise<void> {
  let nodes: RedisConnection[] = [redis];
  if (isCluster(redis)) {
    // The cluster knows its nodes once connected; a command waits for that.
    await redis.ping();
    nodes = redis.nodes('master');
  }
  for (const node of nodes) {
    let policy: string | undefined;
    try {
      const reply = (await node.config('GET', 'maxmemory-policy')) as string[];
      policy = reply[1];
    } catch (error) {
      logger.warn(
        { err: error },
        'cannot read maxmemory-policy (CONFIG refused); make sure it is noeviction',
      );
      return;
    }
    if (policy !== 'noeviction') {
      throw new Error(
        `Redis maxmemory-policy is ${policy}; inferq needs noeviction (queued requests would be evicted)`,
      );
    }
  }
}
