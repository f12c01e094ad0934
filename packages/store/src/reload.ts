import type { RedisConnection } from './connection.ts';
import { keysFor } from './keys.ts';

/** The little of a pino logger this needs. */
interface ReloadLogger {
  warn(fields: object, message: string): void;
}

/**
 * Subscribes `subscriber` (a connection of its own: a subscribed connection takes no other commands)
 * to the deployment's reload channel; `onReload` runs for each message. Returns the connection.
 */
export function subscribeReload(
  subscriber: RedisConnection,
  prefix: string,
  onReload: () => void,
  logger: ReloadLogger,
): RedisConnection {
  const channel = keysFor(prefix).reloadChannel;
  subscriber.on('message', (from: string) => {
    if (from === channel) onReload();
  });
  // ioredis subscribes again by itself after a reconnect.
  subscriber.subscribe(channel).catch((error: unknown) => {
    logger.warn({ err: error }, 'cannot subscribe to the reload channel; SIGHUP and polling still reload');
  });
  return subscriber;
}

/** Asks every API and worker of the deployment to read the model repository again; returns how many heard. */
export async function publishReload(redis: RedisConnection, prefix: string): Promise<number> {
  return redis.publish(keysFor(prefix).reloadChannel, String(Date.now()));
}
