import { type Config, loadConfigOrExit } from '@inferq/config';
import { closeConnection, createRedisConnection } from '@inferq/store';

type Redis = ReturnType<typeof createRedisConnection>;

/** How long a command waits for Redis before it gives up. */
const CONNECT_TIMEOUT_MS = 5_000;

/** Runs `use` with a connection to REDIS_URL (required), closed afterwards. */
export async function withRedis<T>(
  env: NodeJS.ProcessEnv,
  use: (redis: Redis, config: Config) => Promise<T>,
): Promise<T> {
  const config = loadConfigOrExit(env, { requireRedisUrl: true });
  const redis = createRedisConnection(config.redisUrl as string, 'command');
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
