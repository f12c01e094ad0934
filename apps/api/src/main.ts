/**
 * The API process: read the configuration, load the model repository, connect to Redis, listen.
 * Everything the process does lives in createServer(); this file only wires and stops it.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { describeConfig, loadConfigOrExit } from '@inferq/config';
import { createLogger, createMetrics, type Logger } from '@inferq/observability';
import { loadModelRepository } from '@inferq/repository';
import {
  CompletionWatcher,
  closeConnection,
  createRedisConnection,
  RequestStore,
  startDeadlineSweeper,
} from '@inferq/store';
import { createServer } from './server.ts';
import { drainHttpServer, onStopSignal } from './shutdown.ts';

const config = loadConfigOrExit(process.env, { requireRedisUrl: true });
const redisUrl = config.redisUrl as string;
const logger = createLogger(config, 'api');
logger.info({ config: describeConfig(config) }, 'starting');

let repository: Awaited<ReturnType<typeof loadModelRepository>>;
try {
  // The API accepts requests for every model in the repository; MODELS only narrows what a worker serves.
  repository = await loadModelRepository(config.modelRepository);
} catch (error: unknown) {
  logger.fatal({ err: error, modelRepository: config.modelRepository }, 'cannot load the model repository');
  process.exit(1);
}

const redis = createRedisConnection(redisUrl, 'command');
const subscriber = createRedisConnection(redisUrl, 'subscriber');
logConnection(redis, 'command', logger);
logConnection(subscriber, 'subscriber', logger);

const store = new RequestStore({
  redis,
  prefix: config.queuePrefix,
  resultTtlSeconds: config.resultTtlSeconds,
});
// This process's notify channel: the results it waits for (`Prefer: wait`) come there.
const watcher = new CompletionWatcher({
  subscriber,
  prefix: config.queuePrefix,
  instance: randomBytes(9).toString('base64url'),
});
const metrics = createMetrics('api');
const stopping = new AbortController();

const server = createServer({
  config,
  store,
  watcher,
  repository,
  metrics,
  logger,
  redisHealthy: () => redis.status === 'ready',
  shutdownSignal: stopping.signal,
});

// Queued requests past their timeoutMs end `expired` (and say so on their channels) even while no
// worker serves their model.
const deadlineSweeper = startDeadlineSweeper(store, {
  onError: (error) => logger.debug({ err: error }, 'deadline sweep failed'),
});

server.listen(config.port, config.host);
server.on('listening', () => {
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  logger.info(
    { models: repository.list().map((m) => m.name) },
    `inferq API listening on http://${host}:${port}`,
  );
});
server.on('error', (error) => {
  logger.fatal({ err: error }, 'cannot listen');
  process.exit(1);
});

onStopSignal(async () => {
  // Long-polls and event streams answer now with the state they have, instead of holding the drain.
  stopping.abort();
  deadlineSweeper.stop();
  const drained = await drainHttpServer(server, config.shutdownGraceMs);
  if (!drained) logger.warn({ graceMs: config.shutdownGraceMs }, 'grace period over: open connections cut');
  await watcher.close();
  await closeConnection(redis);
}, logger);

/** ioredis reconnects by itself; log each change of state once rather than every failed attempt. */
function logConnection(
  connection: ReturnType<typeof createRedisConnection>,
  role: string,
  log: Logger,
): void {
  let lastError: string | undefined;
  connection.on('error', (error: Error) => {
    if (error.message === lastError) return;
    lastError = error.message;
    log.warn({ role, err: error }, 'Redis connection error');
  });
  connection.on('ready', () => {
    if (lastError !== undefined) log.info({ role }, 'Redis connection restored');
    lastError = undefined;
  });
}
