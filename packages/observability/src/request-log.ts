/**
 * One log line per finished request (docs/observability.md, "Tracing and request logs"): whoever ran
 * the script that ended a request writes it, from what that script reported (`RequestStore`'s
 * `onFinished`), so every request gets exactly one, whatever ended it.
 */
import type { Logger } from 'pino';
import { traceIdOf } from './trace-context.ts';

/** The message of every such line: a stable string to filter on. */
export const REQUEST_FINISHED = 'request finished';

/** A request that just ended, as the store reports it (structurally `FinishedRequest` of @inferq/store). */
export interface FinishedRequestFields {
  id: string;
  model: string;
  version: number;
  status: string;
  cached: boolean;
  coalesced: boolean;
  timings: { queueMs: number; batchWaitMs: number; inferMs: number; totalMs: number };
  /** Requests in the batch that ran it; absent when it never ran. */
  batchSize?: number;
  /** The error's code of a failed, expired or cancelled request. */
  errorCode?: string;
  /** Its packed W3C context (trace-context.ts), when it carries one. */
  trace?: string;
}

/** Writes one `info` line per request: id, model, version, status, flags, timings, trace id. */
export function logFinishedRequests(logger: Logger, requests: readonly FinishedRequestFields[]): void {
  if (requests.length === 0 || !logger.isLevelEnabled('info')) return;
  for (const r of requests) {
    const line: Record<string, unknown> = {
      id: r.id,
      model: r.model,
      version: r.version,
      status: r.status,
      cached: r.cached,
      coalesced: r.coalesced,
      queueMs: r.timings.queueMs,
      batchWaitMs: r.timings.batchWaitMs,
      inferMs: r.timings.inferMs,
      totalMs: r.timings.totalMs,
    };
    if (r.batchSize !== undefined) line.batchSize = r.batchSize;
    if (r.errorCode !== undefined) line.error = r.errorCode;
    if (r.trace !== undefined) line.traceId = traceIdOf(r.trace);
    logger.info(line, REQUEST_FINISHED);
  }
}
