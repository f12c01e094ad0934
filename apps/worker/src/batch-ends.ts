import type { Logger, Metrics } from '@inferq/observability';
import type { RequestError } from '@inferq/protocol';
import type { ModelVersion } from '@inferq/repository';
import type { Completion, QueueIntake, StartOutcome } from '@inferq/store';
import type { LetGo, Runnable, Taken } from './taken.ts';

/** Error code of a request whose workers kept stopping under it (it may be what kills them). */
export const WORKER_LOST = 'worker_lost';
/** Error code of a request whose payload is gone or unreadable: nothing could ever run it. */
export const PAYLOAD_UNREADABLE = 'payload_unreadable';

/** Backoff of a failed run before its next attempt: base × 2^(failed runs - 1). */
const RETRY_BASE_MS = 100;
/** Writes of a batch's results tried before its requests are left to lapse and run again. */
const COMPLETE_TRIES = 4;

export interface BatchEndsOptions {
  version: ModelVersion;
  intake: QueueIntake;
  /** Runs per request before it ends `failed` (JOB_ATTEMPTS). */
  jobAttempts: number;
  metrics: Metrics;
  logger: Logger;
  letGo: LetGo;
  /** Called once a batch's ends are on their way to Redis. */
  endsSent(): void;
}

/** Start-script answers by request id; undefined when the script failed (the batch was let go). */
export type Confirmed = Promise<Map<string, StartOutcome> | undefined>;

/**
 * How a batch's requests end: their completions written (with retries while Redis restarts), a
 * failed run retried with backoff or failed for good, and the records of requests that never ran.
 */
export class BatchEnds {
  private readonly options: BatchEndsOptions;

  constructor(options: BatchEndsOptions) {
    this.options = options;
  }

  /**
   * Writes a batch's ends, retrying a failed write with backoff (Redis may be restarting); once out of
   * tries the requests are let go unacknowledged: their leases lapse and they run again.
   */
  async write(completions: Completion[], takens: readonly Taken[]): Promise<void> {
    const { intake, logger } = this.options;
    for (let attempt = 1; completions.length > 0; attempt++) {
      try {
        const written = intake.complete(completions);
        this.options.endsSent();
        await written;
        break;
      } catch (error) {
        if (attempt >= COMPLETE_TRIES) {
          logger.error(
            { err: error },
            'writing results failed; the requests run again once their leases lapse',
          );
          break;
        }
        logger.warn({ err: error, attempt }, 'writing results failed; trying again');
        await new Promise((resolve) => setTimeout(resolve, 100 * 4 ** (attempt - 1)));
      }
    }
    for (const taken of takens) this.options.letGo(taken);
  }

  /**
   * A failed run is tried again after a backoff while the request has attempts left; on its last
   * attempt the request ends `failed` with a stable code instead.
   */
  async failOrRetry(group: Runnable[], error: Error, startedAt: number, confirmed: Confirmed): Promise<void> {
    const { intake, metrics, logger, jobAttempts, letGo } = this.options;
    const model = this.options.version.name;
    logger.warn({ err: error, model, size: group.length }, 'inference failed');
    const outcomes = await confirmed;
    if (outcomes === undefined) return;
    const mine = group.filter((r) => outcomes.get(r.taken.delivery.id)?.state === 'run');
    // A queue that counts attempts itself (BullMQ) may allow fewer: it would fail the job on its own.
    const final = mine.filter(
      (r) =>
        r.taken.delivery.attempts + 1 >= Math.min(jobAttempts, r.taken.delivery.maxAttempts ?? jobAttempts),
    );
    let again = mine.filter((r) => !final.includes(r));
    const unstarted = again.filter((r) => r.startSkipped);
    if (unstarted.length > 0) {
      // The retry script acts on started requests only (its delayed set, promote and the stall count
      // all assume `running`): start these now, as the completion script would have.
      const takens = unstarted.map((r) => r.taken);
      const started = await this.outcomesOf(
        intake.start(
          takens.map((t) => t.delivery),
          startedAt,
        ),
        takens,
      );
      // Not started (the script failed: all let go, their leases lapse; or it dropped a request that
      // was cancelled or expired meanwhile, its entry with it): no retry to schedule.
      const dropped = new Set(unstarted.filter((r) => started?.get(r.taken.delivery.id)?.state !== 'run'));
      for (const r of dropped) letGo(r.taken);
      again = again.filter((r) => !dropped.has(r));
    }
    if (again.length > 0) {
      const now = Date.now();
      try {
        await intake.retryLater(
          again.map((r) => ({
            delivery: r.taken.delivery,
            due: now + RETRY_BASE_MS * 2 ** r.taken.delivery.attempts,
          })),
        );
      } catch (retryError) {
        logger.error(
          { err: retryError },
          'could not schedule retries; the requests return when their leases lapse',
        );
      }
      for (const r of again) letGo(r.taken);
    }
    if (final.length > 0) {
      metrics.requests.inc({ model, status: 'failed' }, final.length);
      await this.write(
        final.map((r) =>
          this.failure(r.taken, { code: 'inference_failed', message: error.message }, startedAt),
        ),
        final.map((r) => r.taken),
      );
    }
    for (const r of group) if (!mine.includes(r)) letGo(r.taken);
  }

  /** The start script's answers by request id; undefined (and the batch let go) when it failed. */
  async outcomesOf(
    started: Promise<StartOutcome[]>,
    live: readonly Taken[],
  ): Promise<Map<string, StartOutcome> | undefined> {
    try {
      return new Map((await started).map((o) => [o.id, o]));
    } catch (error) {
      // Nothing is acknowledged: the leases lapse and the requests run again (here or elsewhere).
      this.options.logger.error(
        { err: error },
        'starting a batch failed; its requests return when their leases lapse',
      );
      for (const taken of live) this.options.letGo(taken);
      return undefined;
    }
  }

  ending(
    taken: Taken,
    now: number,
  ): Pick<Completion, 'id' | 'model' | 'version' | 'createdAt' | 'queueEntry' | 'now'> {
    const { delivery } = taken;
    return {
      id: delivery.id,
      model: this.options.version.name,
      version: this.options.version.version,
      createdAt: delivery.createdAt,
      queueEntry: { stream: delivery.stream, entry: delivery.entry },
      now,
    };
  }

  timingsOf(taken: Taken, startedAt: number, inferMs: number): Completion['timings'] {
    return {
      queueMs: Math.max(0, startedAt - taken.delivery.createdAt),
      batchWaitMs: Math.max(0, startedAt - taken.arrivedAt),
      inferMs,
    };
  }

  failure(taken: Taken, error: RequestError, startedAt: number): Completion {
    return {
      ...this.ending(taken, Date.now()),
      status: 'failed',
      error,
      timings: this.timingsOf(taken, startedAt, 0),
      batchSize: 0,
    };
  }
}

export function lostError(): RequestError {
  return {
    code: WORKER_LOST,
    message: 'the workers running this request stopped before finishing it too many times',
  };
}

/** The error of a request whose outputs are larger than MAX_OUTPUT_BYTES. */
export function outputTooLarge(bytes: number, limit: number | undefined): RequestError {
  return {
    code: 'output_too_large',
    message: `the outputs take ${bytes} bytes, more than the ${limit} allowed (MAX_OUTPUT_BYTES); request fewer outputs or smaller inputs`,
  };
}
