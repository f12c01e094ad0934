/**
 * This API process's share of the status page's figures: its cache lookups and hits per model. They
 * are read from the counters it already keeps for /metrics (`inferq_cache_hits_total`,
 * `inferq_cache_misses_total`), so submit pays nothing for them, and written to `<prefix>:stats`
 * under `api:<instance>` at most once per flush interval, only when they moved: every API replica's
 * figures meet there, and each replica's status page shows the sum.
 */
import { randomBytes } from 'node:crypto';
import type { Logger, Metrics } from '@inferq/observability';
import { type LiveStatsRegistry, LiveStatsWindow } from '@inferq/store';

/** How often the counters are read and, when they moved, written. */
export const CACHE_STATS_FLUSH_MS = 2_000;

export interface ApiCacheStatsOptions {
  metrics: Pick<Metrics, 'cacheHits' | 'cacheMisses'>;
  registry: LiveStatsRegistry;
  logger: Logger;
  now?: () => number;
}

export class ApiCacheStats {
  readonly id = `api:${process.pid}-${randomBytes(6).toString('base64url')}`;
  private readonly options: ApiCacheStatsOptions;
  private readonly now: () => number;
  private readonly window: LiveStatsWindow;
  /** The counters' values at the last read, per model. */
  private readonly seen = new Map<string, { hits: number; misses: number }>();
  private timer: NodeJS.Timeout | undefined;
  private flushing = false;

  constructor(options: ApiCacheStatsOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
    this.window = new LiveStatsWindow(this.now());
  }

  /** Flushes every CACHE_STATS_FLUSH_MS until `signal` aborts or `stop`. */
  start(signal?: AbortSignal): void {
    this.timer = setInterval(() => void this.flush(), CACHE_STATS_FLUSH_MS);
    this.timer.unref();
    signal?.addEventListener('abort', () => this.stop(), { once: true });
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Counts what the counters moved by since the last read, and writes the window if it changed. */
  async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      const now = this.now();
      const hits = await valuesByModel(this.options.metrics.cacheHits);
      const misses = await valuesByModel(this.options.metrics.cacheMisses);
      for (const model of new Set([...hits.keys(), ...misses.keys()])) {
        const current = { hits: hits.get(model) ?? 0, misses: misses.get(model) ?? 0 };
        const last = this.seen.get(model) ?? { hits: 0, misses: 0 };
        this.seen.set(model, current);
        const newHits = current.hits - last.hits;
        this.window.cacheLookups(model, newHits + current.misses - last.misses, newHits, now);
      }
      if (!this.window.dirty) return;
      try {
        await this.options.registry.write(this.window.report(this.id, now));
      } catch (error) {
        this.window.touch();
        this.options.logger.debug({ err: error }, 'writing live stats failed');
      }
    } finally {
      this.flushing = false;
    }
  }
}

type ModelCounter = Metrics['cacheHits'];

async function valuesByModel(counter: ModelCounter): Promise<Map<string, number>> {
  const values = new Map<string, number>();
  for (const { labels, value } of (await counter.get()).values) {
    const model = labels.model;
    if (typeof model === 'string') values.set(model, (values.get(model) ?? 0) + value);
  }
  return values;
}
