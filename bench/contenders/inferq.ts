import type { QueueBackend } from '@inferq/config';
import { type BenchModel, type BenchPipeline, makeRepository } from '../lib/models.ts';
import {
  ContenderStartError,
  freePort,
  ManagedProcess,
  startRedisServer,
  waitForHttp,
} from '../lib/processes.ts';
import { temporaryDir } from '../lib/temporary.ts';

const READY_TIMEOUT_MS = 90_000;

/** A running inferq: where to reach its API, its Redis and each worker's /metrics. */
export interface InferqDeployment {
  readonly description: string;
  /** QUEUE_BACKEND it runs with. */
  readonly backend: QueueBackend;
  readonly apiUrl: string;
  readonly redisUrl: string;
  readonly workerMetricsUrls: readonly string[];
  stop(): Promise<void>;
}

function baseEnv(repository: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, MODEL_REPOSITORY: repository };
  // A REDIS_URL from the caller's shell would make `inferq serve` skip its private Redis, and point
  // split deployments at a Redis the bench does not own.
  delete env.REDIS_URL;
  return env;
}

/**
 * The README's all-in-one: `node apps/cli/dist/main.js serve` with no REDIS_URL, so it starts its
 * own redis-server, the API and one worker, and prints `inferq ready: URL` once /readyz answers 200.
 * Its repository holds `models` and `pipelines` (each with the models its steps run).
 */
export async function startAllInOne(
  repoRoot: string,
  models: readonly BenchModel[],
  backend: QueueBackend = 'streams',
  pipelines: readonly BenchPipeline[] = [],
): Promise<InferqDeployment> {
  const repository = makeRepository(models, repoRoot, pipelines);
  const dataDir = temporaryDir('inferq-bench-serve-');
  const port = await freePort();
  const metricsPort = await freePort();
  const serve = new ManagedProcess(
    'inferq serve',
    process.execPath,
    ['apps/cli/dist/main.js', 'serve', '--data-dir', dataDir.path],
    {
      cwd: repoRoot,
      env: {
        ...baseEnv(repository.dir),
        PORT: String(port),
        METRICS_PORT: String(metricsPort),
        QUEUE_BACKEND: backend,
      },
    },
  );
  const stop = async (): Promise<void> => {
    await serve.stop(60_000);
    dataDir.remove();
    repository.remove();
  };
  try {
    const ready = await serve.waitForOutput(/^inferq ready: (\S+)$/m, READY_TIMEOUT_MS);
    const redisLine = /^inferq: redis-server pid \d+ listening on (\S+),/m.exec(serve.output());
    if (redisLine === null) throw serve.failure('did not say where its redis-server listens');
    return {
      description: `inferq serve (all-in-one: private redis-server, API, 1 worker; ${backend} queue)`,
      backend,
      apiUrl: ready[1] as string,
      redisUrl: redisLine[1] as string,
      workerMetricsUrls: [`http://127.0.0.1:${metricsPort}/metrics`],
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * API and worker processes started one by one, as a deployment would: a redis-server of the
 * bench's own, `node apps/api/dist/main.js`, and `workers` × `node apps/worker/dist/main.js`, each
 * with REDIS_URL, PORT and its own METRICS_PORT. Ready once every worker has said so and /readyz
 * counts them all as live for every model.
 */
export async function startSplit(
  repoRoot: string,
  models: readonly BenchModel[],
  workers: number,
): Promise<InferqDeployment> {
  const repository = makeRepository(models, repoRoot);
  const redis = await startRedisServer();
  const processes: ManagedProcess[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(processes.map((child) => child.stop()));
    await redis.stop();
    repository.remove();
  };
  try {
    const env = { ...baseEnv(repository.dir), REDIS_URL: redis.url };
    const port = await freePort();
    const api = new ManagedProcess('inferq api', process.execPath, ['apps/api/dist/main.js'], {
      cwd: repoRoot,
      env: { ...env, PORT: String(port), METRICS_PORT: String(await freePort()) },
    });
    processes.push(api);
    const metricsUrls: string[] = [];
    for (let i = 0; i < workers; i++) {
      const metricsPort = await freePort();
      metricsUrls.push(`http://127.0.0.1:${metricsPort}/metrics`);
      processes.push(
        new ManagedProcess(`inferq worker ${i + 1}`, process.execPath, ['apps/worker/dist/main.js'], {
          cwd: repoRoot,
          env: { ...env, PORT: String(await freePort()), METRICS_PORT: String(metricsPort) },
        }),
      );
    }
    await Promise.all(
      processes.slice(1).map((worker) => worker.waitForOutput(/worker ready/, READY_TIMEOUT_MS)),
    );
    const apiUrl = `http://127.0.0.1:${port}`;
    await waitForHttp(
      `${apiUrl}/readyz`,
      (status, body) => {
        if (status !== 200) return false;
        const readiness = JSON.parse(body) as { models?: { liveWorkers?: number }[] };
        return (readiness.models ?? []).every((model) => (model.liveWorkers ?? 0) >= workers);
      },
      READY_TIMEOUT_MS,
      () => processes.every((child) => child.alive),
    ).catch((error: unknown) => {
      const dead = processes.find((child) => !child.alive);
      if (dead !== undefined) throw dead.failure('exited before the deployment was ready');
      const outputs = processes.map((child) => `--- ${child.name}:\n${child.output().trimEnd()}`).join('\n');
      throw new ContenderStartError(`${error instanceof Error ? error.message : String(error)}\n${outputs}`);
    });
    return {
      description: `redis-server + inferq API + ${workers} worker process${workers === 1 ? '' : 'es'}`,
      backend: 'streams',
      apiUrl,
      redisUrl: redis.url,
      workerMetricsUrls: metricsUrls,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
