/**
 * This worker's share of the status page's figures (docs/design.md, "Status page"): each request it
 * ends (with its latency) and each batch's size go into a LiveStatsWindow (a few additions, no I/O), and
 * the window is written to `<prefix>:stats` at most once per flush interval, only when it changed.
 */
import type { Logger } from '@inferq/observability';
import type { FinishedRequest, LiveStatsRegistry } from '@inferq/store';
import { LiveStatsWindow, queueName } from '@inferq/store';

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
  private readonly options: WorkerLiveStatsOptions;
  private readonly now: () => number;
  private readonly window: LiveStatsWindow;
  private timer: NodeJS.Timeout | undefined;
  /** One write in flight at a time: while Redis is away the figures wait in the window. */
  private writing: Promise<void> | undefined;

  constructor(options: WorkerLiveStatsOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
    this.window = new LiveStatsWindow(this.now());
  }

  forVersion(model: string, version: number): VersionLiveStats {
    const key = queueName(model, version);
    const window = this.window;
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
      this.window.finished(key, request.timings.totalMs, request.status !== 'succeeded', now);
    }
  }

  start(): void {
    this.timer = setInterval(() => void this.flush(), LIVE_STATS_FLUSH_MS);
    this.timer.unref();
  }

  /** Stops the timer and writes what is left, so the last batches count. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.writing;
    await this.flush();
  }

  private flush(): Promise<void> {
    if (this.writing !== undefined || !this.window.dirty) return Promise.resolve();
    const report = this.window.report(this.options.workerId, this.now());
    this.writing = this.options.registry
      .write(report)
      .catch((error: unknown) => {
        this.window.touch();
        this.options.logger.debug({ err: error }, 'writing live stats failed');
      })
      .finally(() => {
        this.writing = undefined;
      });
    return this.writing;
  }
}
