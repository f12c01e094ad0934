import { loadConfigOrExit } from '@inferq/config';
import { closeConnection, createRedisConnection, queueName, RequestStore } from '@inferq/store';

export type QueueAction = 'status' | 'pause' | 'resume';

export interface QueueCommandOptions {
  modelVersion?: number;
}

/** How long the command waits for Redis before it gives up. */
const CONNECT_TIMEOUT_MS = 5_000;

/**
 * `inferq queue <status|pause|resume> <model>`: an operator's handle on one model version's queue,
 * over REDIS_URL and QUEUE_PREFIX. `pause` holds new requests in Redis (workers keep running what
 * they already took); `resume` enqueues them in arrival order. Prints the queue's state as JSON.
 */
export async function queueCommand(
  action: QueueAction,
  model: string,
  options: QueueCommandOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const config = loadConfigOrExit(env, { requireRedisUrl: true });
  const redis = createRedisConnection(config.redisUrl as string, 'command');
  redis.on('error', () => undefined);
  try {
    await ready(redis);
    const store = new RequestStore({
      redis,
      prefix: config.queuePrefix,
      resultTtlSeconds: config.resultTtlSeconds,
    });
    // The highest version with a queue in Redis; 1 when none has one yet (a queue can be paused first).
    const version = options.modelVersion ?? Math.max(1, ...(await store.queuedVersions(model)));
    let resumed: number | undefined;
    if (action === 'pause') await store.pause(model, version);
    if (action === 'resume') resumed = await store.resume(model, version);
    const state = {
      queue: queueName(model, version),
      model,
      version,
      paused: await store.isPaused(model, version),
      ...(await store.queueCounts(model, version)),
      ...(resumed === undefined ? {} : { resumed }),
    };
    process.stdout.write(`${JSON.stringify(state)}\n`);
    return 0;
  } finally {
    await closeConnection(redis);
  }
}

function ready(redis: ReturnType<typeof createRedisConnection>): Promise<void> {
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
