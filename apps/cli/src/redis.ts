import { type Config, loadConfigOrExit, type RedisClusterConfig, redisTarget } from '@inferq/config';
import { closeConnection, createRedisConnection } from '@inferq/store';
import { defaultDataDir, readServeState, SERVE_STATE_NAME } from './serve-state.ts';

type Redis = ReturnType<typeof createRedisConnection>;

/** How long a command waits for Redis before it gives up. */
const CONNECT_TIMEOUT_MS = 5_000;

/**
 * The Redis a command talks to: REDIS_URL (or REDIS_CLUSTER_NODES) when set, else the private Redis of the `inferq serve`
 * running from `dataDir` (its state file there; default `<repo>/.data/redis`).
 */
export function resolveRedisUrl(
  config: Config,
  dataDir: string = defaultDataDir(),
): string | RedisClusterConfig {
  const configured = redisTarget(config);
  if (configured !== undefined) return configured;
  const state = readServeState(dataDir);
  if (state !== undefined) return state.redisUrl;
  throw new Error(
    `REDIS_URL is unset and no \`inferq serve\` is running from ${dataDir} (no live ${SERVE_STATE_NAME} there): set REDIS_URL, or pass serve's --data-dir`,
  );
}

/**
 * The queue backend a command acts on: QUEUE_BACKEND when set; else, talking to the private Redis of a
 * running `inferq serve` (no REDIS_URL), the backend that serve runs (its state file says), so that
 * `inferq queue pause` pauses the queues its workers read.
 */
export function resolveQueueBackend(
  env: NodeJS.ProcessEnv,
  config: Config,
  dataDir: string = defaultDataDir(),
): Config['queueBackend'] {
  if (env.QUEUE_BACKEND !== undefined || redisTarget(config) !== undefined) return config.queueBackend;
  return readServeState(dataDir)?.queueBackend ?? config.queueBackend;
}

/** Runs `use` with a connection to the Redis resolveRedisUrl names, closed afterwards. */
export async function withRedis<T>(
  env: NodeJS.ProcessEnv,
  use: (redis: Redis, config: Config) => Promise<T>,
  dataDir?: string,
): Promise<T> {
  const loaded = loadConfigOrExit(env);
  const config = { ...loaded, queueBackend: resolveQueueBackend(env, loaded, dataDir) };
  const redis = createRedisConnection(resolveRedisUrl(config, dataDir), 'command');
  redis.on('error', () => undefined);
  try {
    await ready(redis);
    return await use(redis, config);
  } finally {
    await closeConnection(redis);
  }
}

function ready(redis: Redis): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`Redis did not answer within ${CONNECT_TIMEOUT_MS / 1000} s`)),
      CONNECT_TIMEOUT_MS,
    );
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
