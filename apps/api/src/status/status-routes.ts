/**
 * `GET /status` (the live status page) and `GET /status.json` (the figures it polls), docs/api.md
 * "Status page". They tell model names, states, counts and latencies, what /metrics tells: open
 * like it, unless admin credentials are configured (ADMIN_KEY or ADMIN_TENANTS), which then open
 * these routes as they open Bull Board.
 */
import type { Logger, Metrics } from '@inferq/observability';
import { type InferenceQueue, LiveStatsRegistry, type RedisConnection } from '@inferq/store';
import { type RequestHandler, Router } from 'express';
import type { AdminAuthenticator } from '../admin-auth.ts';
import type { ModelCatalog } from '../catalog.ts';
import { ApiCacheStats } from './cache-stats.ts';
import { STATUS_PAGE_HEADERS, STATUS_PAGE_HTML } from './status-page.ts';
import { StatusSource } from './status-source.ts';

export const STATUS_PAGE_PATH = '/status';
export const STATUS_JSON_PATH = '/status.json';

export interface StatusRoutesOptions {
  config: { queuePrefix: string };
  catalog: ModelCatalog;
  queue: InferenceQueue;
  store: { redis: RedisConnection };
  metrics: Metrics;
  logger: Logger;
  /** Admin credentials: when configured, they are needed here too. */
  auth: AdminAuthenticator;
  /** Stops this process's cache figures from being written. */
  shutdownSignal?: AbortSignal;
}

/** The routes, and this process's cache figures written for every replica's page to sum. */
export function statusRoutes(options: StatusRoutesOptions): Router {
  const { auth } = options;
  const registry = new LiveStatsRegistry({ redis: options.store.redis, prefix: options.config.queuePrefix });
  const cacheStats = new ApiCacheStats({ metrics: options.metrics, registry, logger: options.logger });
  cacheStats.start(options.shutdownSignal);
  // A connection closed for good (the process, or a test, is done with it) has nothing to write to.
  options.store.redis.once('end', () => cacheStats.stop());
  const source = new StatusSource({ catalog: options.catalog, queue: options.queue, registry });

  const access: RequestHandler = (req, _res, next) => {
    checkStatusAccess(auth, req.get('authorization'));
    next();
  };
  const router = Router();
  router.get(STATUS_PAGE_PATH, access, (_req, res) => {
    res.set(STATUS_PAGE_HEADERS).send(STATUS_PAGE_HTML);
  });
  router.get(STATUS_JSON_PATH, access, async (_req, res) => {
    const snapshot = await source.snapshot();
    res.set('Cache-Control', 'no-store').json(snapshot);
  });
  return router;
}

/**
 * Open while no admin credential is configured (the figures are those /metrics tells, and the page
 * works on `npm start`'s defaults); otherwise the admin key or an admin tenant's key, as Bull Board
 * asks: 401 without one (a browser then asks for it, Basic), 403 for another tenant's key.
 */
export function checkStatusAccess(auth: AdminAuthenticator, authorization: string | undefined): void {
  if (auth.configured) auth.check(authorization);
}
