import type { Logger, Metrics } from '@inferq/observability';
import { TERMINAL_STATUSES } from '@inferq/protocol';
import type { Completion, RequestStore } from '@inferq/store';

/** Error code of a request whose job BullMQ gave up on because its workers kept dying under it. */
export const WORKER_LOST = 'worker_lost';
/** Error code of a request whose job failed its last attempt before any result was written. */
export const JOB_FAILED = 'job_failed';

export interface AbandonedDeps {
  store: RequestStore;
  model: string;
  version: number;
  metrics: Metrics;
  logger: Logger;
}

/** Why BullMQ failed the job for good. */
export interface AbandonCause {
  /** It stalled more than `maxStalledCount` times (BullMQ's UnrecoverableError). */
  stalled: boolean;
  reason: string;
}

/**
 * Ends `failed` the requests of a job BullMQ failed for good whose records are not terminal yet.
 * - Stalled more than `maxStalledCount` times (every worker holding it died or froze past its lock,
 *   e.g. on an input that crashes the process): BullMQ fails it without running it, so nothing else
 *   would ever end its requests. Code `worker_lost`.
 * - Failed its last attempt for another reason than the model (the model's own failures are already
 *   written as `inference_failed`), e.g. its results could not be written: code `job_failed`.
 * Requests already terminal are left alone (the completion script ignores them too), so a repeated
 * call is harmless.
 */
export async function failAbandonedRequests(
  ids: readonly string[],
  cause: AbandonCause,
  deps: AbandonedDeps,
): Promise<void> {
  const { store, model, version, metrics, logger } = deps;
  const now = Date.now();
  const error = cause.stalled
    ? {
        code: WORKER_LOST,
        message: `the workers running this request stopped before finishing it too many times (${cause.reason})`,
      }
    : { code: JOB_FAILED, message: `the last attempt of this request failed: ${cause.reason}` };
  const completions: Completion[] = [];
  for (const id of ids) {
    const record = await store.get(id);
    if (record === undefined || TERMINAL_STATUSES.has(record.status)) continue;
    completions.push({
      id,
      model,
      version,
      createdAt: Date.parse(record.createdAt),
      status: 'failed',
      error,
      timings: { queueMs: 0, batchWaitMs: 0, inferMs: 0 },
      batchSize: 0,
      now,
    });
  }
  if (completions.length === 0) return;
  await store.complete(completions);
  metrics.requests.inc({ model, status: 'failed' }, completions.length);
  logger.error(
    { model, ids: completions.map((c) => c.id), code: error.code, reason: cause.reason },
    'requests ended failed: BullMQ failed their job for good',
  );
}
