/**
 * The figures of the status page (`/status.json`), summed from every process's live-stats report
 * (packages/store live-stats/) and joined with what the API knows itself: each version's state, live
 * workers and queue depth. Pure: the route gathers the inputs, this file only adds them up.
 */
import {
  firstSlotOfWindow,
  LATENCY_BUCKETS_MS,
  type LiveStatsReport,
  queueName,
  STATS_SLOT_MS,
  STATS_WINDOW_SLOTS,
} from '@inferq/store';

/** The window every figure covers (the current, partial 5-second slot included). */
export const STATUS_WINDOW_SECONDS = (STATS_WINDOW_SLOTS * STATS_SLOT_MS) / 1000;

/** One version as the catalogue sees it. */
export interface VersionInput {
  version: number;
  state: 'loading' | 'ready' | 'unavailable' | 'retired';
  reason?: string;
  liveWorkers: number;
}

export interface ModelInput {
  name: string;
  kind: 'model' | 'pipeline';
  defaultVersion?: number;
  versions: VersionInput[];
}

export interface StatusInput {
  now: number;
  models: ModelInput[];
  /** Live workers in the fleet, whatever they serve. */
  liveWorkers: number;
  /** Queue depth by `queueName`; a version missing here could not be read. */
  queueDepths: ReadonlyMap<string, number>;
  reports: readonly LiveStatsReport[];
}

export interface VersionStatus extends VersionInput {
  /** Requests waiting or running (undefined: the queue could not be read). */
  queueDepth: number | null;
  /** Requests the workers finished in the window, and those of them that failed. */
  finished: number;
  failed: number;
  /** Finished requests per second over the window. */
  throughput: number;
  /** Acceptance to end of the finished requests, estimated from the latency buckets (ms). */
  latencyMs: { p50: number | null; p99: number | null };
  /** Model runs in the window: how many, their mean and largest size (requests per run). */
  batches: { count: number; meanSize: number | null; largest: number | null };
}

export interface ModelStatus {
  name: string;
  kind: 'model' | 'pipeline';
  defaultVersion: number | null;
  /** The API's submissions that looked in the result cache, and the hits, in the window. */
  cache: { lookups: number; hits: number; hitRatio: number | null };
  versions: VersionStatus[];
}

export interface StatusSnapshot {
  generatedAt: string;
  windowSeconds: number;
  liveWorkers: number;
  models: ModelStatus[];
}

/** What every report holds for one version within the window. */
interface VersionTotals {
  finished: number;
  failed: number;
  throughput: number;
  latency: number[];
  batches: number;
  batchedRequests: number;
  largestBatch: number;
}

export function buildStatusSnapshot(input: StatusInput): StatusSnapshot {
  const { now } = input;
  const first = firstSlotOfWindow(now);
  const versionTotals = new Map<string, VersionTotals>();
  const cacheTotals = new Map<string, { lookups: number; hits: number }>();
  for (const report of input.reports) {
    const seconds = coveredSeconds(report, now);
    for (const [key, slots] of Object.entries(report.versions)) {
      const totals = versionTotals.get(key) ?? emptyTotals();
      let finished = 0;
      for (const slot of slots) {
        if (slot.slot < first) continue;
        finished += slot.finished;
        totals.failed += slot.failed;
        addInto(totals.latency, slot.latency);
        totals.batches += slot.batches;
        totals.batchedRequests += slot.batchedRequests;
        totals.largestBatch = Math.max(totals.largestBatch, slot.largestBatch);
      }
      totals.finished += finished;
      // Rates add up across processes, each over the part of the window it was up for.
      totals.throughput += finished / seconds;
      versionTotals.set(key, totals);
    }
    for (const [model, slots] of Object.entries(report.cache)) {
      const totals = cacheTotals.get(model) ?? { lookups: 0, hits: 0 };
      for (const slot of slots) {
        if (slot.slot < first) continue;
        totals.lookups += slot.lookups;
        totals.hits += slot.hits;
      }
      cacheTotals.set(model, totals);
    }
  }

  return {
    generatedAt: new Date(now).toISOString(),
    windowSeconds: STATUS_WINDOW_SECONDS,
    liveWorkers: input.liveWorkers,
    models: input.models.map((model): ModelStatus => {
      const cache = cacheTotals.get(model.name) ?? { lookups: 0, hits: 0 };
      return {
        name: model.name,
        kind: model.kind,
        defaultVersion: model.defaultVersion ?? null,
        cache: {
          ...cache,
          hitRatio: cache.lookups === 0 ? null : round(cache.hits / cache.lookups, 4),
        },
        versions: model.versions.map((version): VersionStatus => {
          const key = queueName(model.name, version.version);
          const totals = versionTotals.get(key) ?? emptyTotals();
          return {
            ...version,
            queueDepth: input.queueDepths.get(key) ?? null,
            finished: totals.finished,
            failed: totals.failed,
            throughput: round(totals.throughput, 2),
            latencyMs: {
              p50: roundOrNull(latencyQuantileMs(totals.latency, 0.5)),
              p99: roundOrNull(latencyQuantileMs(totals.latency, 0.99)),
            },
            batches: {
              count: totals.batches,
              meanSize: totals.batches === 0 ? null : round(totals.batchedRequests / totals.batches, 2),
              largest: totals.batches === 0 ? null : totals.largestBatch,
            },
          };
        }),
      };
    }),
  };
}

/**
 * The q-quantile of a latency histogram (counts per LATENCY_BUCKETS_MS bucket, the last one above
 * every bound), interpolated linearly within its bucket as Prometheus's histogram_quantile does; one
 * in the overflow bucket is the last bound. Null without any count.
 */
export function latencyQuantileMs(counts: readonly number[], q: number): number | null {
  const total = counts.reduce((sum, n) => sum + n, 0);
  if (total === 0) return null;
  const rank = q * total;
  let below = 0;
  for (let index = 0; index < counts.length; index++) {
    const count = counts[index]!;
    if (count > 0 && below + count >= rank) {
      if (index >= LATENCY_BUCKETS_MS.length) return LATENCY_BUCKETS_MS.at(-1)!;
      const lower = index === 0 ? 0 : LATENCY_BUCKETS_MS[index - 1]!;
      const upper = LATENCY_BUCKETS_MS[index]!;
      return lower + (upper - lower) * ((rank - below) / count);
    }
    below += count;
  }
  return LATENCY_BUCKETS_MS.at(-1)!;
}

/** Seconds of the window the report's process was up for (at least one, so a new one's rate stays sane). */
function coveredSeconds(report: LiveStatsReport, now: number): number {
  const windowStart = firstSlotOfWindow(now) * STATS_SLOT_MS;
  return Math.max(1, (now - Math.max(windowStart, report.startedAt)) / 1000);
}

function emptyTotals(): VersionTotals {
  return {
    finished: 0,
    failed: 0,
    throughput: 0,
    latency: [],
    batches: 0,
    batchedRequests: 0,
    largestBatch: 0,
  };
}

function addInto(into: number[], counts: readonly number[]): void {
  for (let index = 0; index < counts.length; index++) into[index] = (into[index] ?? 0) + counts[index]!;
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function roundOrNull(value: number | null): number | null {
  return value === null ? null : round(value, 2);
}
