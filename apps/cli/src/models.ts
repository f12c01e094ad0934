import { publishReload } from '@inferq/store';
import { withRedis } from './redis.ts';

/**
 * `inferq models reload`: asks every API and worker of the deployment (REDIS_URL, QUEUE_PREFIX) to
 * read the model repository again now (docs/models.md, "Hot reload"). Prints how many processes
 * heard it; 0 is not an error (none may be running), but says so.
 */
export async function modelsReloadCommand(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return withRedis(env, async (redis, config) => {
    const heard = await publishReload(redis, config.queuePrefix);
    process.stdout.write(`${JSON.stringify({ reload: 'requested', processes: heard })}\n`);
    return 0;
  });
}
