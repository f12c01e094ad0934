import { randomUUID } from 'node:crypto';
import { loadConfigOrExit } from '@inferq/config';
import { createLogger, createMetrics } from '@inferq/observability';
import { loadModelRepository } from '@inferq/repository';
import { ModelSession } from '@inferq/runtime';
import {
  closeConnection,
  createRedisConnection,
  QueueConsumer,
  RequestStore,
  startDeadlineSweeper,
} from '@inferq/store';
import { WebhookDispatcher } from '@inferq/webhooks';
import { startMetricsServer } from './metrics-server.ts';
import { ModelWorker } from './model-worker.ts';
import { assertRedisIsDurable } from './redis-checks.ts';

const HEARTBEAT_MS = 2_000;

const config = loadConfigOrExit(process.env);
const logger = createLogger(config, 'worker');

if (!config.redisUrl) {
  logger.fatal('REDIS_URL is required for a worker process (npm start sets it for the all-in-one)');
  process.exit(1);
}

const workerId = `${process.pid}-${randomUUID().slice(0, 8)}`;
const connection = createRedisConnection(config.redisUrl, 'worker');
connection.on('error', (error) => logger.warn({ err: error }, 'redis connection error'));
const store = new RequestStore({
  redis: connection,
  prefix: config.queuePrefix,
  resultTtlSeconds: config.resultTtlSeconds,
});
/** One blocking connection per model version served: XREADGROUP BLOCK holds its connection. */
const blockingConnections: ReturnType<typeof createRedisConnection>[] = [];
const metrics = createMetrics('worker');

let ready = false;
const workers: ModelWorker[] = [];
const sessions: ModelSession[] = [];
const metricsServer = await startMetricsServer({
  host: config.host,
  port: config.metricsPort,
  registry: metrics.registry,
  isReady: () => ready,
});

try {
  await assertRedisIsDurable(connection, logger);
  const repository = await loadModelRepository(config.modelRepository, config.models);
  for (const info of repository.list()) {
    // Every version is served: a request may pin an older one.
    for (const v of info.versions) {
      const version = repository.get(info.name, v);
      if (!version) continue;
      const session = await ModelSession.open(version, { intraOpThreads: version.config.intraOpThreads });
      sessions.push(session);
      if (version.config.warmup) await session.warmup();
      const blocking = createRedisConnection(config.redisUrl, 'worker');
      blocking.on('error', (error) => logger.warn({ err: error }, 'redis connection error'));
      blockingConnections.push(blocking);
      const consumer = new QueueConsumer({
        blocking,
        queue: store.queueKeys(info.name, v),
        consumer: workerId,
      });
      await consumer.ensureGroups();
      workers.push(
        new ModelWorker({
          version,
          session,
          store,
          consumer,
          jobAttempts: config.jobAttempts,
          maxOutputBytes: config.caps.maxOutputBytes,
          metrics,
          logger,
        }),
      );
      logger.info(
        {
          model: info.name,
          version: v,
          provider: session.executionProvider,
          placement: session.placement,
          config: version.config,
        },
        'model loaded',
      );
    }
  }
} catch (error) {
  logger.fatal({ err: error }, 'worker failed to start');
  process.exit(1);
}

const models = [...new Set(workers.map((w) => w.version.name))];
metrics.setQueueDepthSource(async () =>
  Promise.all(
    workers.map(
      async (w) => [w.version.name, await store.queueDepth(w.version.name, w.version.version)] as const,
    ),
  ),
);
for (const w of workers) w.start();
const beat = (): void => {
  store.heartbeat(models, workerId, Date.now()).catch((error: unknown) => {
    logger.warn({ err: error }, 'heartbeat failed');
  });
};
beat();
const heartbeat = setInterval(beat, HEARTBEAT_MS);
// Queued requests past their timeoutMs end `expired` within a second, whether or not a worker
// takes them (start-0.lua catches the rest).
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
logger.info({ workerId, models, metricsPort: config.metricsPort }, 'worker ready');

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
  deadlineSweeper.stop();
  await Promise.all([...workers.map((w) => w.close()), webhooks?.stop()]);
  await store.leave(models, workerId).catch(() => undefined);
  await Promise.all(sessions.map((s) => s.close()));
  await new Promise<void>((resolve) => metricsServer.close(() => resolve()));
  await Promise.all([connection, ...blockingConnections].map((c) => closeConnection(c)));
  logger.info('worker stopped');
  process.exit(0);
}
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, (s) => void shutdown(s));
}
