/**
 * This worker's share of the status page's figures (docs/design.md, "Status page"): each request it
 * ends (with its latency) and each batch's size go into a LiveStatsWindow (a few additions, no I/O), and
 * the window is written to `<prefix>:stats` at most once per flush interval, only when it changed.
 */
import type { Logger } from '@inferq/observability';
import type { FinishedRequest, LiveStatsRegistry } from '@inferq/store';
import { LiveStatsWriter, queueName } from '@inferq/store';

/** How often counted figures are written; the status page polls every 2 s. */
export const LIVE_STATS_FLUSH_MS = 2_000;

export interface WorkerLiveStatsOptions {
  registry: LiveStatsRegistry;
  /** The worker's fleet id: its report sits beside its heartbeat under the same name. */
  workerId: string;
  logger: Logger;
  now?: () => number;
}

/** One model version's recorder, handed to the worker that serves it. */
export interface VersionLiveStats {
  /** A model run of `size` requests, at `now`. */
  ranBatch(size: number, now: number): void;
}

export class WorkerLiveStats {
  private readonly writer: LiveStatsWriter;
  private readonly now: () => number;

  constructor(options: WorkerLiveStatsOptions) {
    const { logger } = options;
    this.now = options.now ?? Date.now;
    this.writer = new LiveStatsWriter({
      registry: options.registry,
      id: options.workerId,
      intervalMs: LIVE_STATS_FLUSH_MS,
      onError: (error) => logger.debug({ err: error }, 'writing live stats failed'),
      now: this.now,
    });
  }

  forVersion(model: string, version: number): VersionLiveStats {
    const key = queueName(model, version);
    const window = this.writer.window;
    return {
      ranBatch(size, now) {
        window.batch(key, size, now);
      },
    };
  }

  /**
   * The requests this process's scripts ended (RequestStoreOptions.onFinished), each reported once:
   * a batch's requests and their coalesced followers, failures after their last attempt, lost and
   * expired ones, pipeline requests. Answers from the cache ran nothing and are left out.
   */
  requestsEnded(requests: readonly FinishedRequest[], now = this.now()): void {
    for (const request of requests) {
      if (request.cached) continue;
      const key = queueName(request.model, request.version);
      this.writer.window.finished(key, request.timings.totalMs, request.status !== 'succeeded', now);
    }
  }

  start(): void {
    this.writer.start();
  }

  /** Stops the timer and writes what is left, so the last batches count. */
  stop(): Promise<void> {
    return this.writer.close();
  }
}
