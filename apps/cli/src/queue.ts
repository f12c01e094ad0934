import { queueName, RequestStore } from '@inferq/store';
import { withRedis } from './redis.ts';

export type QueueAction = 'status' | 'pause' | 'resume';

export interface QueueCommandOptions {
  modelVersion?: number;
}

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
  return withRedis(env, async (redis, config) => {
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
  });
}
