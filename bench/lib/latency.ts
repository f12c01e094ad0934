import { build, type Histogram } from 'hdr-histogram-js';

/** Percentiles of one series of latencies, in milliseconds. */
export interface LatencySummary {
  count: number;
  meanMs: number;
  minMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

/** Latencies are recorded in whole microseconds; 3 significant digits keep each value within 0.1%. */
const MICROS_PER_MS = 1000;
/** Two minutes: far beyond any wait a benchmark request is allowed. Larger values are clamped. */
const HIGHEST_TRACKABLE_MICROS = 120_000_000;

/**
 * An HDR histogram of latencies: constant memory whatever the sample count, and every percentile
 * within 0.1% of the exact order statistic (values under 2.048 ms are kept exactly to the µs).
 */
export class LatencyHistogram {
  private readonly histogram: Histogram = build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIGHEST_TRACKABLE_MICROS,
    numberOfSignificantValueDigits: 3,
    autoResize: false,
  });

  /** Records one latency; negative values (clock noise on a difference) count as zero. */
  record(ms: number): void {
    const micros = Math.round(ms * MICROS_PER_MS);
    this.histogram.recordValue(Math.min(HIGHEST_TRACKABLE_MICROS, Math.max(0, micros)));
  }

  get count(): number {
    return this.histogram.totalCount;
  }

  /** The latency at or below which `percentile` % of the samples fall (0 when empty). */
  percentileMs(percentile: number): number {
    if (this.histogram.totalCount === 0) return 0;
    return this.histogram.getValueAtPercentile(percentile) / MICROS_PER_MS;
  }

  summary(): LatencySummary {
    const h = this.histogram;
    const empty = h.totalCount === 0;
    return {
      count: h.totalCount,
      meanMs: empty ? 0 : h.mean / MICROS_PER_MS,
      minMs: empty ? 0 : this.percentileMs(0),
      p50Ms: this.percentileMs(50),
      p90Ms: this.percentileMs(90),
      p99Ms: this.percentileMs(99),
      p999Ms: this.percentileMs(99.9),
      maxMs: empty ? 0 : h.maxValue / MICROS_PER_MS,
    };
  }
}
