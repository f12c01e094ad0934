import { loadModelRepository } from '@inferq/repository';
import { createQueue, FleetRegistry, queueName, RequestStore } from '@inferq/store';
import { withRedis } from './redis.ts';

export type QueueAction = 'status' | 'pause' | 'resume';

export interface QueueCommandOptions {
  modelVersion?: number;
  /** serve's data folder, where its Redis URL is found when REDIS_URL is unset. */
  dataDir?: string;
}

/**
 * A model is known when the model repository (MODEL_REPOSITORY) has it or a live worker reports it
 * in the fleet view (docs/models.md): a typo must not create a paused queue nobody serves.
 */
async function isKnownModel(model: string, repositoryDir: string, fleet: FleetRegistry): Promise<boolean> {
  const repository = await loadModelRepository(repositoryDir).catch(() => undefined);
  if (repository?.model(model) !== undefined) return true;
  const workers = await fleet.live(Date.now());
  return workers.some((worker) => worker.versions.some((version) => version.model === model));
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
  return withRedis(
    env,
    async (redis, config) => {
      const fleet = new FleetRegistry({ redis, prefix: config.queuePrefix });
      if (!(await isKnownModel(model, config.modelRepository, fleet))) {
        process.stderr.write(
          `inferq: unknown model "${model}": not in the model repository (${config.modelRepository}) and no live worker serves it\n`,
        );
        return 1;
      }
      const queue = createQueue({
        backend: config.queueBackend,
        store: new RequestStore({
          redis,
          prefix: config.queuePrefix,
          resultTtlSeconds: config.resultTtlSeconds,
        }),
        jobAttempts: config.jobAttempts,
      });
      // The highest version with a queue in Redis; 1 when none has one yet (a queue can be paused first).
      const version = options.modelVersion ?? Math.max(1, ...(await queue.versions(model)));
      let resumed: number | undefined;
      if (action === 'pause') await queue.pause(model, version);
      if (action === 'resume') resumed = await queue.resume(model, version);
      const state = {
        queue: queueName(model, version),
        model,
        version,
        paused: await queue.isPaused(model, version),
        ...(await queue.counts(model, version)),
        ...(resumed === undefined ? {} : { resumed }),
      };
      process.stdout.write(`${JSON.stringify(state)}\n`);
      await queue.close();
      return 0;
    },
    options.dataDir,
  );
}
