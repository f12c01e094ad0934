/**
 * The API process: read the configuration, load the model repository, connect to Redis, listen.
 * Everything the process does lives in createServer(); this file only wires and stops it.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { describeConfig, exitOnListenFailure, loadConfigOrExit, redisTarget } from '@inferq/config';
import {
  createLogger,
  createMetrics,
  type Logger,
  logFinishedRequests,
  startTracing,
} from '@inferq/observability';
import { RepositoryWatch } from '@inferq/repository';
import {
  CompletionWatcher,
  closeConnection,
  createQueue,
  createRedisConnection,
  FleetRegistry,
  RequestStore,
  startDeadlineSweeper,
  subscribeReload,
} from '@inferq/store';
import { ModelCatalog } from './catalog.ts';
import { createServer } from './server.ts';
import { drainHttpServer, onStopSignal } from './shutdown.ts';

const config = loadConfigOrExit(process.env, { requireRedisUrl: true });
// REDIS_URL, or REDIS_CLUSTER_NODES for a Redis Cluster (loadConfig requires one of them here).
const redisUrl = redisTarget(config) as NonNullable<ReturnType<typeof redisTarget>>;
const logger = createLogger(config, 'api');
logger.info({ config: describeConfig(config) }, 'starting');

const redis = createRedisConnection(redisUrl, 'command');
const subscriber = createRedisConnection(redisUrl, 'subscriber');
logConnection(redis, 'command', logger);
logConnection(subscriber, 'subscriber', logger);

// OpenTelemetry only when an OTLP endpoint is configured (the SDK is not even loaded otherwise).
const tracing = await startTracing(config.tracing, 'inferq-api', logger);
const store = new RequestStore({
  redis,
  prefix: config.queuePrefix,
  resultTtlSeconds: config.resultTtlSeconds,
  // One line per request this process ends: cache hits, cancels, expiries (docs/observability.md).
  onFinished: (requests) => logFinishedRequests(logger, requests),
});
// This process's notify channel: the results it waits for (`Prefer: wait`) come there.
const watcher = new CompletionWatcher({
  subscriber,
  prefix: config.queuePrefix,
  instance: randomBytes(9).toString('base64url'),
});
const metrics = createMetrics('api');
const stopping = new AbortController();

// The API reads signatures and configs from the model files itself (no onnxruntime, no weights held)
// and each version's state from the workers' reports; MODELS only narrows what a worker serves.
let catalog: ModelCatalog | undefined;
const repositoryWatch = new RepositoryWatch({
  dir: config.modelRepository,
  pollSeconds: config.repositoryPollSeconds,
  logger,
  onRead: (repository) => catalog?.setRepository(repository),
});
try {
  const repository = await repositoryWatch.start();
  catalog = new ModelCatalog({
    repository,
    fleet: new FleetRegistry({ redis, prefix: config.queuePrefix }),
    waitForCapacity: config.waitForCapacity,
    logger,
  });
} catch (error: unknown) {
  logger.fatal({ err: error, modelRepository: config.modelRepository }, 'cannot read the model repository');
  process.exit(1);
}
await catalog.start();
const reloads = subscribeReload(
  createRedisConnection(redisUrl, 'subscriber'),
  config.queuePrefix,
  () => void repositoryWatch.readNow('reload'),
  logger,
);
process.on('SIGHUP', () => void repositoryWatch.readNow('SIGHUP'));

// QUEUE_BACKEND: the streams queue, or BullMQ (whose outbox this process sweeps, docs/design.md).
const queue = createQueue({
  backend: config.queueBackend,
  store,
  jobAttempts: config.jobAttempts,
  sweepOutbox: true,
  logger,
});
const server = createServer({
  config,
  store,
  queue,
  watcher,
  catalog,
  metrics,
  logger,
  redisHealthy: () => redis.status === 'ready',
  shutdownSignal: stopping.signal,
  ...(tracing === undefined ? {} : { tracing }),
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
  logger.info({ models: catalog.modelNames() }, `inferq API listening on http://${host}:${port}`);
});
// One line naming PORT (or HOST), not a stack trace: the operator's fix is a setting.
server.once('error', (error) => exitOnListenFailure(error, 'PORT', config.host, config.port));

// Started by `inferq serve` (an IPC channel to it): the channel closes however serve ends, even by
// SIGKILL; stop then as on SIGTERM rather than live on as an orphan holding PORT.
const onParentGone = (): void => {
  if (!stopping.signal.aborted) process.kill(process.pid, 'SIGTERM');
};
// It may have gone while we started (before this listener existed).
if (process.send !== undefined && !process.connected) onParentGone();
else process.once('disconnect', onParentGone);

onStopSignal(async () => {
  // Long-polls and event streams answer now with the state they have, instead of holding the drain.
  stopping.abort();
  deadlineSweeper.stop();
  repositoryWatch.stop();
  catalog.stop();
  const drained = await drainHttpServer(server, config.shutdownGraceMs);
  if (!drained) logger.warn({ graceMs: config.shutdownGraceMs }, 'grace period over: open connections cut');
  await watcher.close();
  await queue.close();
  await tracing?.shutdown().catch((error: unknown) => logger.warn({ err: error }, 'flushing spans failed'));
  await Promise.all([redis, reloads].map((c) => closeConnection(c)));
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
