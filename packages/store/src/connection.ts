import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';

/** The submit script's name for a call that must not wait for the tick's pipeline. */
export const SUBMIT_NOW_COMMAND = 'inferqSubmitNow';

/** A connection to one Redis, or to a Redis Cluster: everything in this package takes either. */
export type RedisConnection = Redis | Cluster;

/** A Redis Cluster to connect to (config's `REDIS_CLUSTER_NODES`). */
export interface RedisClusterTarget {
  /** Seed nodes: any of them is enough to discover the cluster; list several. */
  nodes: readonly { host: string; port: number }[];
  username?: string;
  password?: string;
  /** TLS to every node (`rediss://`). */
  tls?: boolean;
}

/** Where Redis is: a `redis://`, `rediss://` or `unix:///path` URL, or a cluster's seed nodes. */
export type RedisTarget = string | RedisClusterTarget;

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

export function createRedisConnection(url: string, role: RedisRole): Redis;
export function createRedisConnection(target: RedisTarget, role: RedisRole): RedisConnection;
export function createRedisConnection(target: RedisTarget, role: RedisRole): RedisConnection {
  const options = optionsFor(role);
  if (typeof target === 'string') return connect(target, options);
  // A subscriber needs no slot routing (PUBLISH reaches every node of a cluster), and a plain
  // connection says when it lost its subscriptions ('close', then 'ready'), which the waiters need.
  if (role === 'subscriber') return subscriberOnCluster(target, options);
  return new Cluster([...target.nodes], clusterOptions(target, options));
}

function optionsFor(role: RedisRole): RedisOptions {
  const common = {
    retryStrategy: (attempt: number) => Math.min(50 * attempt, 1000),
    connectionName: `inferq-${role}`,
    lazyConnect: false,
  } as const;
  switch (role) {
    case 'command':
      return {
        ...common,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        enableAutoPipelining: true,
        // RequestStore.submit sends the first submit of a tick under this name, at once, and a large
        // payload's SET on its own, not copied once more into a pipeline's write (see there).
        autoPipeliningIgnoredCommands: [SUBMIT_NOW_COMMAND, 'set'],
      };
    case 'worker':
      return { ...common, maxRetriesPerRequest: null, enableReadyCheck: true };
    case 'subscriber':
      return { ...common, maxRetriesPerRequest: null };
    default: {
      const unreachable: never = role;
      throw new Error(`unknown Redis role ${String(unreachable)}`);
    }
  }
}

/**
 * The role's options for a cluster. Commands go to the master of their key's slot (`scaleReads`
 * master: a replica may lag, and every script writes); a failover answers MOVED or drops the
 * connection, and the cluster client retries on the new master after refreshing its slots.
 */
function clusterOptions(target: RedisClusterTarget, options: RedisOptions): ClusterOptions {
  const { retryStrategy, enableOfflineQueue, enableAutoPipelining, autoPipeliningIgnoredCommands, ...node } =
    options;
  return {
    scaleReads: 'master',
    clusterRetryStrategy: retryStrategy as (attempt: number) => number,
    enableOfflineQueue: enableOfflineQueue ?? true,
    enableReadyCheck: true,
    ...(enableAutoPipelining === undefined ? {} : { enableAutoPipelining }),
    ...(autoPipeliningIgnoredCommands === undefined ? {} : { autoPipeliningIgnoredCommands }),
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    slotsRefreshTimeout: 2_000,
    redisOptions: {
      ...node,
      ...credentials(target),
    },
  };
}

function credentials(target: RedisClusterTarget): RedisOptions {
  return {
    ...(target.username === undefined ? {} : { username: target.username }),
    ...(target.password === undefined ? {} : { password: target.password }),
    ...(target.tls === true ? { tls: {} } : {}),
  };
}

/**
 * A subscriber on a cluster: one plain connection to one seed node, moving on to the next seed each
 * time it reconnects, so a node that stays down does not hold it (any node delivers every message).
 */
function subscriberOnCluster(target: RedisClusterTarget, options: RedisOptions): Redis {
  const nodes = target.nodes;
  let next = 0;
  const first = nodes[0];
  if (first === undefined) throw new Error('a Redis Cluster needs at least one node');
  const redis: Redis = new Redis({
    ...options,
    ...credentials(target),
    host: first.host,
    port: first.port,
    retryStrategy: (attempt: number) => {
      next = (next + 1) % nodes.length;
      const node = nodes[next]!;
      // The connector reads these options on each connect.
      redis.options.host = node.host;
      redis.options.port = node.port;
      return Math.min(50 * attempt, 1000);
    },
  });
  return redis;
}

/**
 * A `unix:///path` URL is a socket path (a round trip through it is about 20 µs shorter than through
 * loopback TCP on the bench machine); anything else is ioredis's own `redis://` / `rediss://` parsing.
 */
function connect(url: string, options: RedisOptions): Redis {
  if (!url.startsWith('unix:')) return new Redis(url, options);
  return new Redis({ ...options, path: decodeURIComponent(new URL(url).pathname) });
}

/** Whether `connection` is a Redis Cluster client. */
export function isCluster(connection: RedisConnection): connection is Cluster {
  return connection instanceof Cluster;
}

/**
 * Closes a connection politely (QUIT, so replies in flight arrive) but never waits more than
 * `timeoutMs`: with Redis down a QUIT would wait for the reconnect for ever, holding a stopping
 * process open. Then the socket is dropped.
 */
export async function closeConnection(connection: RedisConnection, timeoutMs = 1_000): Promise<void> {
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
