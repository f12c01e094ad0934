/**
 * Bull Board at /admin/queues, on the bullmq backend only: the BullMQ queue of every model version
 * the catalogue serves, for admins (admin-auth.ts).
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Logger } from '@inferq/observability';
import type { BullmqQueue } from '@inferq/store';
import { type RequestHandler, Router } from 'express';
import type { AdminAuthenticator } from './admin-auth.ts';
import type { ModelCatalog } from './catalog.ts';

export const ADMIN_BOARD_PATH = '/admin/queues';

export interface AdminBoardOptions {
  queue: BullmqQueue;
  catalog: ModelCatalog;
  auth: AdminAuthenticator;
  logger: Logger;
}

/** The board's routes, to mount at ADMIN_BOARD_PATH: every request is authenticated first. */
export function adminBoard(options: AdminBoardOptions): Router {
  const { queue, catalog, auth, logger } = options;
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(ADMIN_BOARD_PATH);
  const board = createBullBoard({
    queues: [],
    serverAdapter,
    options: { uiConfig: { boardTitle: 'inferq queues' } },
  });
  // Bull Board's own Express app sets X-Powered-By unless told otherwise, as the API's does not.
  (serverAdapter.getRouter() as { disable(name: string): void }).disable('x-powered-by');

  // One adapter per queue name, kept while its version is served: the board's list is replaced only
  // when the catalogue's versions change, not on every poll of the UI.
  let adapters = new Map<string, BullMQAdapter>();
  const refresh: RequestHandler = (_req, _res, next) => {
    const next_ = new Map<string, BullMQAdapter>();
    for (const model of catalog.modelNames()) {
      for (const view of catalog.versions(model) ?? []) {
        if (view.state === 'retired') continue;
        const bull = queue.queueFor(model, view.version);
        // Read-only: a job is one half of a request (its record, cache and waiters are the other),
        // so removing, retrying or adding jobs here would leave requests that never end. Requests
        // are cancelled through the API; versions are paused with `inferq queue pause`.
        next_.set(bull.name, adapters.get(bull.name) ?? new BullMQAdapter(bull, { readOnlyMode: true }));
      }
    }
    if (next_.size !== adapters.size || [...next_.keys()].some((name) => !adapters.has(name))) {
      board.replaceQueues([...next_.values()]);
      adapters = next_;
    }
    next();
  };

  if (!auth.configured) logger.warn('Bull Board is refused to everyone: set ADMIN_KEY or ADMIN_TENANTS');
  const router = Router();
  router.use((req, _res, next) => {
    auth.check(req.get('authorization'));
    next();
  });
  router.use(refresh, serverAdapter.getRouter() as RequestHandler);
  return router;
}
