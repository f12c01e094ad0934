import { Redis } from 'ioredis';

/**
 * - command: the API's connection. `enableOfflineQueue: false` makes a call fail at once while Redis
 *   is down, so a submit answers 503 instead of hanging; one retry per call keeps latency bounded.
 * - worker: a worker's connections (one of them blocked in XREADGROUP) must never give up on a call
 *   (`maxRetriesPerRequest: null`), so they ride out a Redis restart.
 * - subscriber: pub/sub; offline queue on so subscriptions issued during a reconnect are replayed.
 * Every role reconnects forever with a capped backoff and logs nothing itself: callers attach
 * `error` listeners (ioredis otherwise prints unhandled errors).
 */
export type RedisRole = 'command' | 'worker' | 'subscriber';

export function createRedisConnection(url: string, role: RedisRole): Redis {
  const common = {
    retryStrategy: (attempt: number) => Math.min(50 * attempt, 1000),
    connectionName: `inferq-${role}`,
    lazyConnect: false,
  } as const;
  switch (role) {
    case 'command':
      return new Redis(url, {
        ...common,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        enableAutoPipelining: true,
      });
    case 'worker':
      return new Redis(url, { ...common, maxRetriesPerRequest: null, enableReadyCheck: true });
    case 'subscriber':
      return new Redis(url, { ...common, maxRetriesPerRequest: null });
    default: {
      const unreachable: never = role;
      throw new Error(`unknown Redis role ${String(unreachable)}`);
    }
  }
}

/**
 * Closes a connection politely (QUIT, so replies in flight arrive) but never waits more than
 * `timeoutMs`: with Redis down a QUIT would wait for the reconnect for ever, holding a stopping
 * process open. Then the socket is dropped.
 */
export async function closeConnection(connection: Redis, timeoutMs = 1_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    connection.quit().catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  connection.disconnect();
}
