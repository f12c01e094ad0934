import type { Config } from '@inferq/config';
import type { Logger, Metrics } from '@inferq/observability';
import {
  BadRequestError,
  contentTypeOf,
  encodeRecord,
  formatFromContentType,
  InferqError,
  isRequestId,
  NotFoundError,
  negotiateResponseFormat,
  packStandard,
  type RequestRecord,
  toProblem,
  UnsupportedMediaTypeError,
  type WireFormat,
} from '@inferq/protocol';
import type { CompletionWatcher, RequestStore } from '@inferq/store';
import express, { type ErrorRequestHandler, type Request, type RequestHandler, type Response } from 'express';
import { ApiKeyAuthenticator } from './auth.ts';
import { readRawBody } from './body.ts';
import { normalizeError } from './errors.ts';
import { parseIdempotencyKey } from './idempotency.ts';
import { InferenceService, type ModelCatalog, type StatusEvent } from './service.ts';

export interface ServerDeps {
  config: Config;
  store: RequestStore;
  watcher: CompletionWatcher;
  repository: ModelCatalog;
  metrics: Metrics;
  logger: Logger;
  /** Cheap check of the Redis connection state for /readyz (e.g. `() => redis.status === 'ready'`). */
  redisHealthy?: () => boolean;
  /** Aborted when the process begins to stop: long-polls answer at once and event streams end. */
  shutdownSignal?: AbortSignal;
}

/** Seconds a client should wait before asking /readyz again. */
const READY_RETRY_AFTER_SECONDS = 5;
const SSE_HEARTBEAT_MS = 15_000;
const VERSION = /^[1-9][0-9]{0,8}$/;

/**
 * The Express app of the ingest API. Routes are thin: they read HTTP (path, headers, raw body) and
 * hand plain values to InferenceService, then write its answer in the negotiated format. Every error,
 * whoever throws it, ends in the one error handler at the bottom as application/problem+json.
 */
export function createServer(deps: ServerDeps): express.Express {
  const { config, metrics, logger } = deps;
  const service = new InferenceService({
    config,
    store: deps.store,
    watcher: deps.watcher,
    repository: deps.repository,
    metrics,
    logger,
    shutdownSignal: deps.shutdownSignal,
    inputLimits: config.caps,
    maxBulkRequests: config.caps.maxBulkRequests,
  });
  metrics.setQueueDepthSource(
    () => service.queueDepths(),
    (error) => logger.debug({ err: error }, 'queue depth unavailable'),
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

  const infer: RequestHandler = async (req, res) => {
    const format = requestFormat(req);
    const version = modelVersionParam(req);
    const abort = abortOnClose(res);
    const result = await service.submit({
      model: String(req.params.model),
      version,
      body: Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0),
      format,
      tenant: tenantOf(res),
      waitSeconds: preferredWaitSeconds(req.get('prefer')),
      signal: abort.signal,
      idempotencyKey: parseIdempotencyKey(req.get('idempotency-key')),
    });
    const responseFormat = negotiateResponseFormat(req.get('accept'), format);
    if (result.kind === 'finished') {
      sendRecord(res, 200, result.record, responseFormat);
      return;
    }
    if (result.kind === 'announced') {
      sendBytes(res, 200, result.encode(responseFormat), responseFormat);
      return;
    }
    res.set('Location', `/v1/requests/${result.accepted.id}`);
    sendValue(res, 202, result.accepted, responseFormat);
  };
  const inferBulk: RequestHandler = async (req, res) => {
    const format = requestFormat(req);
    const result = await service.submitBulk({
      model: String(req.params.model),
      version: modelVersionParam(req),
      body: Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0),
      format,
      tenant: tenantOf(res),
    });
    sendValue(res, 202, result, negotiateResponseFormat(req.get('accept'), format));
  };

  // The submit routes come first: every request walks the routes in order until one matches, and
  // these are the hot ones. The content type is checked before the body is read: a 415 should not
  // cost reading 16 MiB.
  const submitChain = [authenticate, checkContentType, readBody];
  app.post('/v1/models/:model/infer', ...submitChain, infer);
  app.post('/v1/models/:model/versions/:version/infer', ...submitChain, infer);
  // `\\:` is a literal colon for Express's path syntax (otherwise `:bulk` would be a parameter).
  app.post('/v1/models/:model/infer\\:bulk', ...submitChain, inferBulk);
  app.post('/v1/models/:model/versions/:version/infer\\:bulk', ...submitChain, inferBulk);

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

  app.use('/v1', authenticate);

  app.get('/v1/requests/:id', async (req, res) => {
    const id = requestId(req);
    const abort = abortOnClose(res);
    const record = await service.getRecord(id, tenantOf(res), queryWaitSeconds(req.query.wait), abort.signal);
    sendRecord(res, 200, record, getFormat(req));
  });

  app.delete('/v1/requests/:id', async (req, res) => {
    const record = await service.cancel(requestId(req), tenantOf(res));
    sendRecord(res, 200, record, getFormat(req));
  });

  app.get('/v1/requests/:id/events', async (req, res) => {
    const id = requestId(req);
    const abort = abortOnClose(res);
    let heartbeat: NodeJS.Timeout | undefined;
    const emit = (event: StatusEvent): void => {
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
      const data =
        event.kind === 'terminal'
          ? Buffer.from(encodeRecord(event.record, 'json')).toString('utf8')
          : JSON.stringify({ id: event.id, status: event.status });
      res.write(`event: status\ndata: ${data}\n\n`);
    };
    try {
      await service.followStatus(id, tenantOf(res), emit, abort.signal);
    } catch (error: unknown) {
      // Before the first event the error is an ordinary problem response; after it the stream just
      // ends, and the client recovers with GET /v1/requests/{id}.
      if (!res.headersSent) throw error;
      logger.warn({ err: error, id }, 'status stream ended early');
    } finally {
      clearInterval(heartbeat);
    }
    res.end();
  });

  app.get('/v1/models', async (req, res) => {
    sendValue(res, 200, { models: await service.listModels() }, getFormat(req));
  });

  app.get('/v1/models/:model', async (req, res) => {
    sendValue(res, 200, await service.describeModel(String(req.params.model)), getFormat(req));
  });

  app.use((req, _res, next) => {
    next(new NotFoundError(`no route for ${req.method} ${req.path}`));
  });

  app.use(problemHandler(logger));
  return app;
}

function checkContentType(req: Request, _res: Response, next: () => void): void {
  requestFormat(req);
  next();
}

function requestFormat(req: Request): WireFormat {
  const format = formatFromContentType(req.get('content-type'));
  if (format === undefined) {
    throw new UnsupportedMediaTypeError(
      `Content-Type must be application/json or application/msgpack, got ${req.get('content-type') ?? 'none'}`,
    );
  }
  return format;
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
function abortOnClose(res: Response): AbortController {
  const controller = new AbortController();
  // Only a client that left before the answer needs the abort (its DOMException is not free).
  res.on('close', () => {
    if (!res.writableEnded) controller.abort();
  });
  return controller;
}

function sendRecord(res: Response, status: number, record: RequestRecord, format: WireFormat): void {
  sendBytes(res, status, encodeRecord(record, format), format);
}

function sendValue(res: Response, status: number, value: object, format: WireFormat): void {
  sendBytes(
    res,
    status,
    format === 'json' ? Buffer.from(JSON.stringify(value)) : packStandard(value),
    format,
  );
}

function sendBytes(res: Response, status: number, bytes: Uint8Array, format: WireFormat): void {
  // Straight to Node's response: Express's send() re-derives what is already known here (type,
  // charset, freshness), and this is on every request's path.
  // The answer depends on Accept (negotiated), and nothing else sets Vary on these routes.
  res.writeHead(status, {
    'Content-Type': contentTypeOf(format),
    Vary: 'Accept',
    'Content-Length': bytes.byteLength,
  });
  res.end(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
}

function httpMetrics(metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const start = process.hrtime.bigint();
    res.on('close', () => {
      // The route template, never the raw path: ids and model names would explode the label set.
      const template = (req.route as { path?: unknown } | undefined)?.path;
      metrics.httpRequestDuration.observe(
        {
          method: req.method,
          route: typeof template === 'string' ? template : 'unmatched',
          status: String(res.statusCode),
        },
        Number(process.hrtime.bigint() - start) / 1e9,
      );
    });
    next();
  };
}

/**
 * The single place errors become responses: RFC 9457 problem+json, Retry-After where the error says
 * when to come back, details only for errors we raised on purpose (never a stack trace).
 */
function problemHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    const normalized = normalizeError(error);
    const problem = toProblem(normalized);
    if (problem.status >= 500) {
      logger.error({ err: error, method: req.method, url: req.originalUrl }, 'request failed');
    } else {
      logger.debug({ method: req.method, url: req.originalUrl, problem }, 'request rejected');
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.status(problem.status).set('Content-Type', 'application/problem+json');
    if (normalized instanceof InferqError && normalized.retryAfterSeconds !== undefined) {
      res.set('Retry-After', String(normalized.retryAfterSeconds));
    }
    if (problem.status === 401) res.set('WWW-Authenticate', 'Bearer');
    res.send(JSON.stringify(problem));
  };
}

/** The `:version` path parameter: undefined when the route has none, 404 when it is not a version. */
function modelVersionParam(req: Request): number | undefined {
  const param = req.params.version === undefined ? undefined : String(req.params.version);
  if (param !== undefined && !VERSION.test(param)) {
    throw new NotFoundError(`'${param}' is not a model version; versions are positive integers`);
  }
  return param === undefined ? undefined : Number(param);
}
