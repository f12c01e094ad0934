import type { LiveStatsRegistry } from './registry.ts';
import { LiveStatsWindow } from './window.ts';

export interface LiveStatsWriterOptions {
  registry: Pick<LiveStatsRegistry, 'write'>;
  /** The report's field in `<prefix>:stats`: a worker's fleet id, or `api:<instance>`. */
  id: string;
  /** How often the window is written, when it changed (ms). */
  intervalMs: number;
  /** Counts into the window just before each flush (the API reads its cache counters here). */
  collect?: (window: LiveStatsWindow, now: number) => void | Promise<void>;
  /** A flush that failed; the figures stay in the window and the next flush writes them. */
  onError: (error: unknown) => void;
  now?: () => number;
}

/**
 * One process's live figures: a LiveStatsWindow it counts into (no I/O), written to the registry at
 * most once per interval and only when it changed, one write in flight at a time. While Redis is
 * away a failed write leaves the window changed, so the figures wait in it for the next flush.
 */
export class LiveStatsWriter {
  readonly window: LiveStatsWindow;
  private readonly options: LiveStatsWriterOptions;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(options: LiveStatsWriterOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
    this.window = new LiveStatsWindow(this.now());
  }

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.options.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer; nothing more is written. */
  stop(): void {
    clearInterval(this.timer);
  }

  /** Stops the timer and writes what is left, so the last figures count. */
  async close(): Promise<void> {
    this.stop();
    await this.flushing;
    await this.flush();
  }

  /** Collects, then writes the window if it changed; a no-op while a flush is in flight. */
  flush(): Promise<void> {
    if (this.flushing !== undefined) return Promise.resolve();
    this.flushing = this.collectAndWrite().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async collectAndWrite(): Promise<void> {
    const { registry, id, collect, onError } = this.options;
    const now = this.now();
    try {
      await collect?.(this.window, now);
    } catch (error: unknown) {
      onError(error);
    }
    if (!this.window.dirty) return;
    try {
      await registry.write(this.window.report(id, now));
    } catch (error: unknown) {
      this.window.touch();
      onError(error);
    }
  }
}
