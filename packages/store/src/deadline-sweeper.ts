import type { RequestStore } from './request-store.ts';

/** How often each API and worker process sweeps `<prefix>:deadlines`. */
export const DEADLINE_SWEEP_MS = 1_000;

export interface DeadlineSweeperOptions {
  intervalMs?: number;
  onExpired?: (ids: string[]) => void;
  onError?: (error: unknown) => void;
}

/**
 * Ends queued requests past their deadline even where no worker serves their model (scaled to
 * zero) and nobody reads them, so `expired` reaches the done and callback channels within about a
 * second. Every API and worker process runs one; the sweeps are idempotent, so more of them only
 * shorten the delay. A sweep still running when the next is due is not doubled.
 */
export function startDeadlineSweeper(
  store: RequestStore,
  options: DeadlineSweeperOptions = {},
): { stop(): void } {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    store
      .expireOverdue(Date.now())
      .then((ids) => {
        if (ids.length > 0) options.onExpired?.(ids);
      })
      .catch((error: unknown) => options.onError?.(error))
      .finally(() => {
        running = false;
      });
  }, options.intervalMs ?? DEADLINE_SWEEP_MS);
  // A sweep is never a reason to keep a stopping process alive.
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
