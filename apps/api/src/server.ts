import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { Config } from '@inferq/config';
import type { Logger, Metrics, Tracing } from '@inferq/observability';
import {
  BadRequestError,
  encodeRecordJsonPieces,
  formatFromContentType,
  isRequestId,
  NotFoundError,
  negotiateResponseFormat,
  toProblem,
  UnsupportedMediaTypeError,
  type WireFormat,
} from '@inferq/protocol';
import type { BullmqQueue, CompletionWatcher, InferenceQueue, RequestStore } from '@inferq/store';
import express, { type ErrorRequestHandler, type Request, type RequestHandler, type Response } from 'express';
import { AdminAuthenticator } from './admin-auth.ts';
import { ADMIN_BOARD_PATH, adminBoard } from './admin-board.ts';
import { ApiKeyAuthenticator } from './auth.ts';
import { backlogWithoutCapacity } from './backlog-without-capacity.ts';
import { readRawBody } from './body.ts';
import type { ModelCatalog } from './catalog.ts';
import { clientErrorResponse, normalizeError } from './errors.ts';
import { parseIdempotencyKey } from './idempotency.ts';
import { isImageMediaType } from './image-body.ts';
import { openApiRoutes } from './openapi/routes.ts';
import { sendBytes, sendProblem, sendRecord, sendValue, writePieces } from './responses.ts';
import { InferenceService, type StatusEvent } from './service.ts';
import { statusRoutes } from './status/status-routes.ts';
import type { BodyFormat } from './submission.ts';
import { matchSubmitRoute, type SubmitRoute } from './submit-route.ts';

export interface ServerDeps {
  config: Config;
  /** Where requests wait for workers (QUEUE_BACKEND). */
  queue: InferenceQueue;
  /** Records, cache and the rest of a request's data. */
  store: RequestStore;
  watcher: CompletionWatcher;
  /** The models and their states in the fleet (its owner starts and refreshes it). */
  catalog: ModelCatalog;
  metrics: Metrics;
  logger: Logger;
  /** Cheap check of the Redis connection state for /readyz (e.g. `() => redis.status === 'ready'`). */
  redisHealthy?: () => boolean;
  /** Aborted when the process begins to stop: long-polls answer at once and event streams end. */
  shutdownSignal?: AbortSignal;
  /** How often waiters re-read the record they wait on (default 15 s; tests shorten it). */
  recheckIntervalMs?: number;
  /** OpenTelemetry spans (an OTLP endpoint is configured); absent: tracing off. */
  tracing?: Tracing;
}

/** Seconds a client should wait before asking /readyz again. */
const READY_RETRY_AFTER_SECONDS = 5;
const SSE_HEARTBEAT_MS = 15_000;
const VERSION = /^[1-9][0-9]{0,8}$/;

/**
 * The HTTP server of the ingest API (not yet listening). Routes are thin: they read HTTP (path,
 * headers, raw body) and hand plain values to InferenceService, then write its answer in the
 * negotiated format. Every error, whoever throws it, becomes application/problem+json in one place
 * (responses.ts).
 *
 * The submit routes, every request's path, are served by Node's HTTP server directly; Express serves
 * the rest. On the bench machine Express's routing cost about 110 µs of latency and 165 µs of CPU
 * per request over Node's own server (docs/performance.md), the largest single item in the API's
 * share of P1.
 */
export function createServer(deps: ServerDeps): Server {
  const { config, metrics, logger } = deps;
  const service = new InferenceService({
    config,
    queue: deps.queue,
    store: deps.store,
    watcher: deps.watcher,
    catalog: deps.catalog,
    metrics,
    logger,
    shutdownSignal: deps.shutdownSignal,
    ...(deps.tracing === undefined ? {} : { tracing: deps.tracing }),
    inputLimits: config.caps,
    maxBulkRequests: config.caps.maxBulkRequests,
    ...(deps.recheckIntervalMs === undefined ? {} : { recheckIntervalMs: deps.recheckIntervalMs }),
  });
  metrics.setQueueDepthSource(
    () => service.queueDepths(),
    (error) => logger.debug({ err: error }, 'queue depth unavailable'),
  );
  metrics.setModelStateSource(() => deps.catalog.states());
  metrics.setBacklogWithoutCapacitySource(
    () => backlogWithoutCapacity(deps.catalog, (model, version) => deps.queue.counts(model, version)),
    (error) => logger.debug({ err: error }, 'backlog without capacity unavailable'),
  );
  const auth = new ApiKeyAuthenticator(config.apiKeys);

  const app = express();
  app.disable('x-powered-by');
  // A weak ETag would hash every (possibly large) record body on every poll for no benefit.
  app.set('etag', false);

  app.use(httpMetrics(metrics));

  const authenticate: RequestHandler = (req, res, next) => {
    res.locals.tenant = auth.tenantOf(req.get('authorization'));
    next();
  };
  const readBody = readRawBody(config.maxBodyBytes);

  const submit = async (route: SubmitRoute, req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const tenant = auth.tenantOf(req.headers.authorization);
    // The content type is checked before the body is read: a 415 should not cost reading 16 MiB.
    const format = requestFormat(req.headers['content-type']);
    const body = await readBody(req, res);
    const version = modelVersion(route.version);
    // A raw image body answers JSON unless Accept asks for MessagePack.
    const responseFormat = negotiateResponseFormat(req.headers.accept, format === 'image' ? 'json' : format);
    if (route.bulk) {
      const result = await service.submitBulk({
        model: route.model,
        version,
        body,
        format,
        tenant,
        idempotencyKey: parseIdempotencyKey(header(req, 'idempotency-key')),
        traceparent: header(req, 'traceparent'),
        tracestate: header(req, 'tracestate'),
      });
      sendValue(res, 202, result, responseFormat);
      return;
    }
    const abort = abortOnClose(res);
    const result = await service.submit({
      model: route.model,
      version,
      body,
      format,
      tenant,
      waitSeconds: preferredWaitSeconds(header(req, 'prefer')),
      signal: abort.signal,
      idempotencyKey: parseIdempotencyKey(header(req, 'idempotency-key')),
      traceparent: header(req, 'traceparent'),
      tracestate: header(req, 'tracestate'),
    });
    if (result.kind === 'finished') {
      await sendRecord(res, 200, result.record, responseFormat);
      return;
    }
    if (result.kind === 'announced') {
      sendBytes(res, 200, result.encode(responseFormat), responseFormat);
      return;
    }
    res.setHeader('Location', `/v1/requests/${result.accepted.id}`);
    sendValue(res, 202, result.accepted, responseFormat);
  };

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.get('/readyz', async (_req, res) => {
    const readiness = await service.readiness(deps.redisHealthy);
    if (!readiness.ready) res.status(503).set('Retry-After', String(READY_RETRY_AFTER_SECONDS));
    res.json({ status: readiness.ready ? 'ready' : 'unavailable', ...readiness });
  });

  app.get('/metrics', async (_req, res) => {
    const text = await metrics.registry.metrics();
    res.set('Content-Type', metrics.registry.contentType).send(text);
  });

  // The live status page and its figures (docs/api.md, "Status page").
  app.use(statusRoutes({ ...deps, auth: new AdminAuthenticator(config.admin, auth) }));

  app.use(openApiRoutes(config));

  app.use('/v1', authenticate);

  app.get('/v1/requests/:id', async (req, res) => {
    const id = requestId(req);
    const abort = abortOnClose(res);
    const record = await service.getRecord(id, tenantOf(res), queryWaitSeconds(req.query.wait), abort.signal);
    await sendRecord(res, 200, record, getFormat(req));
  });

  app.delete('/v1/requests/:id', async (req, res) => {
    const record = await service.cancel(requestId(req), tenantOf(res));
    await sendRecord(res, 200, record, getFormat(req));
  });

  app.get('/v1/requests/:id/events', async (req, res) => {
    const id = requestId(req);
    const abort = abortOnClose(res);
    let heartbeat: NodeJS.Timeout | undefined;
    const emit = async (event: StatusEvent): Promise<void> => {
      if (res.destroyed || res.writableEnded) return;
      if (!res.headersSent) {
        res.status(200).set({
          'Content-Type': 'text/event-stream; charset=utf-8',
          'Cache-Control': 'no-cache, no-transform',
          Connection: 'keep-alive',
          // Tells nginx-style proxies not to buffer the stream.
          'X-Accel-Buffering': 'no',
        });
        res.flushHeaders();
        heartbeat = setInterval(() => {
          if (!res.destroyed) res.write(': keep-alive\n\n');
        }, SSE_HEARTBEAT_MS);
      }
      if (event.kind === 'terminal') {
        // The record's JSON in pieces, as GET writes a large one (one line: JSON holds no newline).
        await writePieces(res, ['event: status\ndata: ', ...encodeRecordJsonPieces(event.record), '\n\n']);
        return;
      }
      res.write(`event: status\ndata: ${JSON.stringify({ id: event.id, status: event.status })}\n\n`);
    };
    try {
      await service.followStatus(id, tenantOf(res), emit, abort.signal);
    } catch (error: unknown) {
      // Before the first event the error is an ordinary problem response; after it the stream ends
      // with an `error` event holding that problem (a request whose record is gone: its 404).
      if (!res.headersSent) throw error;
      const problem = toProblem(normalizeError(error));
      if (problem.status !== 404) logger.warn({ err: error, id }, 'status stream ended early');
      if (!res.destroyed && !res.writableEnded)
        res.write(`event: error\ndata: ${JSON.stringify(problem)}\n\n`);
    } finally {
      clearInterval(heartbeat);
    }
    res.end();
  });

  app.get('/v1/models', async (req, res) => {
    sendValue(res, 200, { models: service.listModels() }, getFormat(req));
  });

  app.get('/v1/models/:model', async (req, res) => {
    sendValue(res, 200, service.describeModel(String(req.params.model)), getFormat(req));
  });

  // Bull Board: only the bullmq backend has BullMQ queues to show; elsewhere the path is unknown (404).
  if (config.queueBackend === 'bullmq') {
    if (deps.queue.backend !== 'bullmq') throw new Error('QUEUE_BACKEND is bullmq but the queue is not');
    app.use(
      ADMIN_BOARD_PATH,
      adminBoard({
        queue: deps.queue as BullmqQueue,
        catalog: deps.catalog,
        auth: new AdminAuthenticator(config.admin, auth),
        logger,
      }),
    );
  }

  app.use((req, _res, next) => {
    next(new NotFoundError(`no route for ${req.method} ${req.path}`));
  });

  app.use(problemHandler(logger));

  const server = createHttpServer((req, res) => {
    const route = matchSubmitRoute(req.method, req.url);
    if (route === undefined) {
      app(req, res);
      return;
    }
    timeRequest(metrics, 'POST', res, () => route.template);
    submit(route, req, res).catch((error: unknown) => sendProblem(error, req, res, logger));
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    const answering = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
    if (error.code === 'ECONNRESET' || !socket.writable || answering === true) socket.destroy();
    else socket.end(clientErrorResponse(error));
  });
  // Announced in every answer as `Keep-Alive: timeout=N`; Node closes an idle connection 1 s later.
  server.keepAliveTimeout = config.keepAliveTimeoutMs;
  return server;
}

function requestFormat(contentType: string | undefined): BodyFormat {
  const format = formatFromContentType(contentType);
  if (format !== undefined) return format;
  if (isImageMediaType(contentType)) return 'image';
  throw new UnsupportedMediaTypeError(
    `Content-Type must be application/json or application/msgpack (or image/* for a model or pipeline that takes encoded image bytes), got ${contentType ?? 'none'}`,
  );
}

/** A header sent once, or the first of those sent more than once (as Express's req.get reads it). */
function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** GET and DELETE answer JSON unless Accept asks for MessagePack. */
function getFormat(req: Request): WireFormat {
  return negotiateResponseFormat(req.get('accept'), 'json');
}

function tenantOf(res: Response): string {
  return res.locals.tenant as string;
}

function requestId(req: Request): string {
  const id = String(req.params.id);
  // Anything not shaped like an id cannot exist: answer 404 without asking Redis.
  if (!isRequestId(id)) throw new NotFoundError(`no request with id '${String(req.params.id).slice(0, 64)}'`);
  return id;
}

/** `Prefer: wait=N` (RFC 7240), possibly among other preferences; 0 when absent or unreadable. */
export function preferredWaitSeconds(prefer: string | undefined): number {
  if (prefer === undefined) return 0;
  const match = /(?:^|[,;])\s*wait\s*=\s*"?(\d{1,9})"?\s*(?:$|[,;])/i.exec(prefer);
  return match ? Number(match[1]) : 0;
}

function queryWaitSeconds(value: unknown): number {
  if (value === undefined) return 0;
  if (typeof value !== 'string' || !/^\d{1,9}$/.test(value)) {
    throw new BadRequestError('wait must be a whole number of seconds');
  }
  return Number(value);
}

/** Aborted when the client disconnects before the answer is written. */
function abortOnClose(res: ServerResponse): AbortController {
  const controller = new AbortController();
  // Only a client that left before the answer needs the abort (its DOMException is not free).
  res.on('close', () => {
    if (!res.writableEnded) controller.abort();
  });
  return controller;
}

function httpMetrics(metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    timeRequest(metrics, req.method, res, () => {
      const template = (req.route as { path?: unknown } | undefined)?.path;
      return typeof template === 'string' ? template : 'unmatched';
    });
    next();
  };
}

/**
 * Observes a request's duration once its answer is done (or its client left), labelled with its
 * route template, never the raw path: ids and model names would explode the label set.
 */
function timeRequest(metrics: Metrics, method: string, res: ServerResponse, route: () => string): void {
  const start = process.hrtime.bigint();
  res.on('close', () => {
    metrics.httpRequestDuration.observe(
      { method, route: route(), status: String(res.statusCode) },
      Number(process.hrtime.bigint() - start) / 1e9,
    );
  });
}

function problemHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    sendProblem(error, { method: req.method, url: req.originalUrl }, res, logger);
  };
}

/** The `:version` path segment: undefined when the route has none, 404 when it is not a version. */
function modelVersion(param: string | undefined): number | undefined {
  if (param !== undefined && !VERSION.test(param)) {
    throw new NotFoundError(`'${param}' is not a model version; versions are positive integers`);
  }
  return param === undefined ? undefined : Number(param);
}
