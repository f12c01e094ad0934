import { Redis, type RedisOptions } from 'ioredis';

/** The submit script's name for a call that must not wait for the tick's pipeline. */
export const SUBMIT_NOW_COMMAND = 'inferqSubmitNow';

/**
 * - command: the API's connection. `enableOfflineQueue: false` makes a call fail at once while Redis
 *   is down, so a submit answers 503 instead of hanging; one retry per call keeps latency bounded.
 *   The commands of one tick leave in one write (auto-pipelining), except the first submit of a tick.
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
      return connect(url, {
        ...common,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        enableAutoPipelining: true,
        // RequestStore.submit sends the first submit of a tick under this name, at once, and a large
        // payload's SET on its own, not copied once more into a pipeline's write (see there).
        autoPipeliningIgnoredCommands: [SUBMIT_NOW_COMMAND, 'set'],
      });
    case 'worker':
      return connect(url, { ...common, maxRetriesPerRequest: null, enableReadyCheck: true });
    case 'subscriber':
      return connect(url, { ...common, maxRetriesPerRequest: null });
    default: {
      const unreachable: never = role;
      throw new Error(`unknown Redis role ${String(unreachable)}`);
    }
  }
}

/**
 * A `unix:///path` URL is a socket path (a round trip through it is about 20 µs shorter than through
 * loopback TCP on the bench machine); anything else is ioredis's own `redis://` / `rediss://` parsing.
 */
function connect(url: string, options: RedisOptions): Redis {
  if (!url.startsWith('unix:')) return new Redis(url, options);
  return new Redis({ ...options, path: decodeURIComponent(new URL(url).pathname) });
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
