import type { Server } from 'node:http';
import type { Logger } from '@inferq/observability';

/** The signals that stop an inferq process, in one place. */
export const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

/**
 * Registers `stop` once for every stop signal. The first signal runs it and exits 0 when it
 * finishes (1 if it fails); a second signal while it runs exits 1 at once, for the operator who
 * does not want to wait.
 */
export function onStopSignal(stop: (signal: NodeJS.Signals) => Promise<void>, logger: Logger): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second stop signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    stop(signal).then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  for (const signal of STOP_SIGNALS) process.on(signal, handle);
}

/**
 * Stops accepting connections and waits for open requests to finish, at most `graceMs`; after that
 * the remaining connections are cut. Resolves true when everything finished within the grace period.
 */
export async function drainHttpServer(server: Server, graceMs: number): Promise<boolean> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  // close() only drops the keep-alive connections idle at that moment; one whose request finishes
  // later would hold the drain open until its keep-alive timeout, so sweep them while waiting.
  server.closeIdleConnections();
  const sweeper = setInterval(() => server.closeIdleConnections(), 100);
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<'expired'>((resolve) => {
    timer = setTimeout(() => resolve('expired'), graceMs);
  });
  const outcome = await Promise.race([closed.then(() => 'closed' as const), expired]);
  clearTimeout(timer);
  clearInterval(sweeper);
  if (outcome === 'closed') return true;
  server.closeAllConnections();
  await closed;
  return false;
}
