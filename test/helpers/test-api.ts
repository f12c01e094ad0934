/**
 * The API's HTTP server on an ephemeral port over a real Redis, with its own key prefix, for
 * integration tests that talk real HTTP (hostile input, tenant isolation, caps).
 */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Config, loadConfig } from '@inferq/config';
import { createLogger, createMetrics } from '@inferq/observability';
import { encodeTensorMap } from '@inferq/protocol';
import type { ModelRepository } from '@inferq/repository';
import {
  CompletionWatcher,
  createQueue,
  createRedisConnection,
  FleetRegistry,
  RequestStore,
} from '@inferq/store';
import { expect } from 'vitest';
import { ModelCatalog } from '../../apps/api/src/catalog.ts';
import { createServer } from '../../apps/api/src/server.ts';
import { checkAnswersOf } from './openapi-answers.ts';
import { startAsWorker } from './queue.ts';
import { TEST_QUEUE_BACKEND } from './queue-backend.ts';

type RedisConnection = ReturnType<typeof createRedisConnection>;

/**
 * The API's model catalogue over a real Redis, not refreshing by itself (call `refresh()` after a
 * fleet report). Tests that act as the worker themselves accept requests without a live worker.
 */
export function testCatalog(
  repository: ModelRepository,
  redis: RedisConnection,
  prefix: string,
  waitForCapacity = true,
): ModelCatalog {
  return new ModelCatalog({
    repository,
    fleet: new FleetRegistry({ redis, prefix }),
    waitForCapacity,
    logger: createLogger(loadConfig({ LOG_LEVEL: 'silent' }), 'api'),
  });
}

export interface TestApi {
  url: string;
  config: Config;
  /** The API's catalogue: `refresh()` it after writing a fleet report. */
  catalog: ModelCatalog;
  fleet: FleetRegistry;
  /** A store over the same Redis and prefix, to act as the worker would. */
  store: RequestStore;
  prefix: string;
  fetch(path: string, init?: RequestInit): Promise<Response>;
  close(): Promise<void>;
}

async function ready(connection: RedisConnection): Promise<void> {
  if (connection.status === 'ready') return;
  await new Promise<void>((resolve) => connection.once('ready', () => resolve()));
}

export async function startTestApi(options: {
  redisUrl: string;
  repository: ModelRepository;
  modelRepository: string;
  env?: Record<string, string>;
  /** How often waiters re-read their record (the API's default: 15 s). */
  recheckIntervalMs?: number;
}): Promise<TestApi> {
  const { redisUrl, repository } = options;
  const prefix = `{t-${randomBytes(4).toString('hex')}}`;
  const config = loadConfig({
    REDIS_URL: redisUrl,
    QUEUE_PREFIX: prefix,
    LOG_LEVEL: 'silent',
    MODEL_REPOSITORY: options.modelRepository,
    // These tests complete requests themselves, as the worker would.
    WAIT_FOR_CAPACITY: 'true',
    QUEUE_BACKEND: TEST_QUEUE_BACKEND,
    ...options.env,
  });
  const redis = createRedisConnection(redisUrl, 'command');
  const subscriber = createRedisConnection(redisUrl, 'subscriber');
  // Tests that stop Redis expect connection errors; ioredis would print them unhandled.
  redis.on('error', () => undefined);
  subscriber.on('error', () => undefined);
  await Promise.all([ready(redis), ready(subscriber)]);
  const store = new RequestStore({ redis, prefix, resultTtlSeconds: config.resultTtlSeconds });
  const watcher = new CompletionWatcher({ subscriber, prefix, instance: randomBytes(6).toString('hex') });
  const catalog = testCatalog(repository, redis, prefix, config.waitForCapacity);
  await catalog.refresh();
  const api = createServer({
    config,
    store,
    // The backend of the API's config (the suite's unless `env` names one), as main.ts does.
    queue: createQueue({ backend: config.queueBackend, store, jobAttempts: 3 }),
    watcher,
    catalog,
    metrics: createMetrics('api'),
    logger: createLogger(config, 'api'),
    redisHealthy: () => redis.status === 'ready',
    ...(options.recheckIntervalMs === undefined ? {} : { recheckIntervalMs: options.recheckIntervalMs }),
  });
  const server: Server = await new Promise((resolve) => {
    const s = api.listen(0, '127.0.0.1', () => resolve(s));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  checkAnswersOf(url);
  return {
    url,
    config,
    catalog,
    fleet: new FleetRegistry({ redis, prefix }),
    store,
    prefix,
    fetch: (path, init) => fetch(url + path, init),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await watcher.close();
      redis.disconnect();
    },
  };
}

export function postJson(
  api: TestApi,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return api.fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/**
 * Asserts an exact problem+json answer, `{ type, title, status, detail }` and nothing else, with no
 * stack trace in it.
 */
export async function expectProblem(
  response: Response,
  status: number,
  detail?: RegExp | string,
): Promise<void> {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const problem = (await response.json()) as Record<string, unknown>;
  expect(Object.keys(problem).sort()).toEqual(['detail', 'status', 'title', 'type']);
  expect(problem.status).toBe(status);
  expect(problem.type).toMatch(/^https:\/\/inferq\.dev\/problems\/[a-z-]+$/);
  expect(JSON.stringify(problem)).not.toMatch(/\bat .*\.(ts|js):\d+/);
  if (detail !== undefined) expect(problem.detail).toMatch(detail);
}

/**
 * Acts as the worker for one request of the generated `affine` model: claims it, then stores `y` as
 * its outputs.
 */
export async function completeAsWorker(
  store: RequestStore,
  id: string,
  version: number,
  y: number[],
): Promise<void> {
  const [claim] = await startAsWorker(store, [id], Date.now());
  if (claim?.state !== 'run') throw new Error(`claim of ${id} dropped: ${JSON.stringify(claim)}`);
  await store.complete([
    {
      id,
      model: 'affine',
      version,
      createdAt: claim.createdAt,
      status: 'succeeded',
      outputs: encodeTensorMap({ y: { dtype: 'float32', shape: [1, 4], data: new Float32Array(y) } }),
      timings: { queueMs: 1, batchWaitMs: 0, inferMs: 1 },
      batchSize: 1,
      now: Date.now(),
    },
  ]);
}
