/**
 * This API process's share of the status page's figures: its cache lookups and hits per model. They
 * are read from the counters it already keeps for /metrics (`inferq_cache_hits_total`,
 * `inferq_cache_misses_total`), so submit pays nothing for them, and written to `<prefix>:stats`
 * under `api:<instance>` at most once per flush interval, only when they moved: every API replica's
 * figures meet there, and each replica's status page shows the sum.
 */
import { randomBytes } from 'node:crypto';
import type { Logger, Metrics } from '@inferq/observability';
import { type LiveStatsRegistry, type LiveStatsWindow, LiveStatsWriter } from '@inferq/store';

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
  private readonly writer: LiveStatsWriter;
  private readonly metrics: ApiCacheStatsOptions['metrics'];
  /** The counters' values at the last read, per model. */
  private readonly seen = new Map<string, { hits: number; misses: number }>();

  constructor(options: ApiCacheStatsOptions) {
    const { logger } = options;
    this.metrics = options.metrics;
    this.writer = new LiveStatsWriter({
      registry: options.registry,
      id: this.id,
      intervalMs: CACHE_STATS_FLUSH_MS,
      collect: (window, now) => this.count(window, now),
      onError: (error) => logger.debug({ err: error }, 'writing live stats failed'),
      ...(options.now === undefined ? {} : { now: options.now }),
    });
  }

  /** Flushes every CACHE_STATS_FLUSH_MS until `signal` aborts or `stop`. */
  start(signal?: AbortSignal): void {
    this.writer.start();
    signal?.addEventListener('abort', () => this.stop(), { once: true });
  }

  stop(): void {
    this.writer.stop();
  }

  /** Counts what the counters moved by since the last read, and writes the window if it changed. */
  flush(): Promise<void> {
    return this.writer.flush();
  }

  private async count(window: LiveStatsWindow, now: number): Promise<void> {
    const hits = await valuesByModel(this.metrics.cacheHits);
    const misses = await valuesByModel(this.metrics.cacheMisses);
    for (const model of new Set([...hits.keys(), ...misses.keys()])) {
      const current = { hits: hits.get(model) ?? 0, misses: misses.get(model) ?? 0 };
      const last = this.seen.get(model) ?? { hits: 0, misses: 0 };
      this.seen.set(model, current);
      const newHits = current.hits - last.hits;
      window.cacheLookups(model, newHits + current.misses - last.misses, newHits, now);
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
