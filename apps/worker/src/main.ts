import { randomUUID } from 'node:crypto';
import { exitOnListenFailure, loadConfigOrExit, redisTarget } from '@inferq/config';
import { createLogger, createMetrics, logFinishedRequests, startTracing } from '@inferq/observability';
import { RepositoryWatch } from '@inferq/repository';
import {
  closeConnection,
  createQueue,
  createRedisConnection,
  FleetRegistry,
  LiveStatsRegistry,
  RequestStore,
  startDeadlineSweeper,
  subscribeReload,
} from '@inferq/store';
import { WebhookDispatcher } from '@inferq/webhooks';
import { WorkerLiveStats } from './live-stats.ts';
import { startMetricsServer } from './metrics-server.ts';
import { PipelineSupport } from './pipelines/pipelines.ts';
import { assertRedisIsDurable } from './redis-checks.ts';
import { ServedModels } from './served-models.ts';

const HEARTBEAT_MS = 2_000;

const config = loadConfigOrExit(process.env);
const logger = createLogger(config, 'worker');

// REDIS_URL, or REDIS_CLUSTER_NODES for a Redis Cluster.
const redisUrl = redisTarget(config);
if (redisUrl === undefined) {
  logger.fatal(
    'REDIS_URL (or REDIS_CLUSTER_NODES) is required for a worker process (npm start sets it for the all-in-one)',
  );
  process.exit(1);
}

const workerId = `${process.pid}-${randomUUID().slice(0, 8)}`;
const connect = (): ReturnType<typeof createRedisConnection> => {
  const connection = createRedisConnection(redisUrl, 'worker');
  connection.on('error', (error) => logger.warn({ err: error }, 'redis connection error'));
  return connection;
};
const connection = connect();
// OpenTelemetry only when an OTLP endpoint is configured (the SDK is not even loaded otherwise).
const tracing = await startTracing(config.tracing, 'inferq-worker', logger);
const store = new RequestStore({
  redis: connection,
  prefix: config.queuePrefix,
  resultTtlSeconds: config.resultTtlSeconds,
  // One line per request this process ends: batches and their followers, expiries, its pipelines'
  // cached and cancelled model steps (docs/observability.md).
  onFinished: (requests) => {
    logFinishedRequests(logger, requests);
    liveStats.requestsEnded(requests);
  },
});
const queue = createQueue({
  backend: config.queueBackend,
  store,
  jobAttempts: config.jobAttempts,
  connect,
  sweepOutbox: true,
  logger,
});
const fleet = new FleetRegistry({ redis: connection, prefix: config.queuePrefix });
const metrics = createMetrics('worker');
// The status page's figures of this worker (docs/design.md, "Status page").
const liveStats = new WorkerLiveStats({
  registry: new LiveStatsRegistry({ redis: connection, prefix: config.queuePrefix }),
  workerId,
  logger,
});

let ready = false;
const pipelines = new PipelineSupport({ queue, store, connect, prefix: config.queuePrefix });
const served = new ServedModels({
  workerId,
  queue,
  fleet,
  jobAttempts: config.jobAttempts,
  maxOutputBytes: config.caps.maxOutputBytes,
  inputLimits: config.caps,
  ...(tracing === undefined ? {} : { tracing }),
  metrics,
  liveStats,
  logger,
  pipelines,
  partialRepository: config.models !== undefined,
});
// A second worker on one host needs a METRICS_PORT of its own: say so in one line, not a stack trace.
const metricsServer = await startMetricsServer({
  host: config.host,
  port: config.metricsPort,
  registry: metrics.registry,
  isReady: () => ready,
  versions: () => served.versions(),
}).catch((error: unknown) => exitOnListenFailure(error, 'METRICS_PORT', config.host, config.metricsPort));

try {
  await assertRedisIsDurable(connection, logger);
} catch (error) {
  logger.fatal({ err: error }, 'worker failed to start');
  process.exit(1);
}

// One report in flight at a time; changes meanwhile are sent once it lands, in one report. A report
// lists every version, and each load changes one: reporting each load on its own wrote O(versions²)
// bytes (932 versions: 175 MB of JSON) while the repository loaded.
let reporting = false;
let reportAgain = false;
/** Set when the worker leaves the fleet: no report may put it back. */
let leaving = false;
const beat = (): void => {
  if (leaving) return;
  if (reporting) {
    reportAgain = true;
    return;
  }
  reporting = true;
  fleet
    .report(served.report(Date.now()))
    .catch((error: unknown) => {
      logger.warn({ err: error }, 'heartbeat failed');
    })
    .finally(() => {
      reporting = false;
      if (reportAgain) {
        reportAgain = false;
        beat();
      }
    });
};
served.onChange = beat;
metrics.setModelStateSource(() => served.versions());
metrics.setBatchCostSource(() => served.versions());
metrics.setQueueDepthSource(async () =>
  Promise.all(
    served
      .running()
      .map(async (w) => [w.version.name, await queue.depth(w.version.name, w.version.version)] as const),
  ),
);

const repositoryWatch = new RepositoryWatch({
  dir: config.modelRepository,
  only: config.models,
  pollSeconds: config.repositoryPollSeconds,
  logger,
  onRead: (repository) => served.reconcile(repository),
});
try {
  // Every version is tried; one that cannot load is reported unavailable, never fatal.
  await repositoryWatch.start();
} catch (error) {
  logger.fatal({ err: error }, 'worker failed to start');
  process.exit(1);
}
const reloads = subscribeReload(
  connect(),
  config.queuePrefix,
  () => repositoryWatch.readNow('reload'),
  logger,
);
process.on('SIGHUP', () => void repositoryWatch.readNow('SIGHUP'));
beat();
const heartbeat = setInterval(beat, HEARTBEAT_MS);
liveStats.start();
// Queued requests past their timeoutMs end `expired` within a second, whether or not a worker
// takes them (start-n.lua catches the rest).
const deadlineSweeper = startDeadlineSweeper(store, {
  onExpired: (ids) => logger.debug({ expired: ids.length }, 'expired queued requests past their deadline'),
  onError: (error) => logger.warn({ err: error }, 'deadline sweep failed'),
});
// callback.url of ended requests: every worker delivers a share of <prefix>:webhooks (docs/webhooks.md).
const webhookSecret = config.webhooks.secret;
const webhooks =
  webhookSecret === undefined
    ? undefined
    : new WebhookDispatcher({
        redis: connection,
        store,
        logger,
        registry: metrics.registry,
        settings: { ...config.webhooks, secret: webhookSecret },
      });
if (webhooks) webhooks.start();
else logger.info('webhook delivery off: WEBHOOK_SECRET is not set');
ready = true;
logger.info(
  {
    workerId,
    versions: served.versions().map((v) => `${v.model}@${v.version}:${v.state}`),
    metricsPort: config.metricsPort,
  },
  'worker ready',
);

let stopping = false;
async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (stopping) {
    logger.warn({ signal }, 'second signal: exiting now');
    process.exit(1);
  }
  stopping = true;
  ready = false;
  logger.info({ signal, graceMs: config.shutdownGraceMs }, 'shutting down: finishing running batches');
  const deadline = setTimeout(() => {
    logger.error(
      'grace period over: exiting with batches unfinished (they run again once their leases lapse)',
    );
    process.exit(1);
  }, config.shutdownGraceMs);
  deadline.unref();
  clearInterval(heartbeat);
  leaving = true;
  repositoryWatch.stop();
  deadlineSweeper.stop();
  // Stop dispatching first, in this tick; the API hears of the leave while running batches finish.
  const closing = Promise.all([served.close(), webhooks?.stop()]);
  await fleet.leave(workerId).catch(() => undefined);
  await closing;
  await liveStats.stop();
  await pipelines.close();
  await queue.close();
  await tracing?.shutdown().catch((error: unknown) => logger.warn({ err: error }, 'flushing spans failed'));
  await new Promise<void>((resolve) => metricsServer.close(() => resolve()));
  await Promise.all([connection, reloads].map((c) => closeConnection(c)));
  logger.info('worker stopped');
  process.exit(0);
}
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, (s) => void shutdown(s));
}
// Started by `inferq serve` (an IPC channel to it): the channel closes however serve ends, even by
// SIGKILL; stop then as on SIGTERM rather than live on as an orphan holding METRICS_PORT.
const onParentGone = (): void => {
  if (!stopping) void shutdown('SIGTERM');
};
// It may have gone while we loaded models (before this listener existed).
if (process.send !== undefined && !process.connected) onParentGone();
else process.once('disconnect', onParentGone);
