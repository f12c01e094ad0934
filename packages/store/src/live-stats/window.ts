/**
 * The live figures of the status page (docs/design.md, "Status page"), as each process keeps them:
 * per model version, the requests a worker finished, their latency in a small fixed-bucket histogram
 * and the batches they ran in; per model, the API's cache lookups and hits. Counts go into 5-second
 * slots aligned to the wall clock, so that a reader can sum every process's slots of the last minute
 * without asking when each one wrote; slots older than the window are dropped.
 */

/** One slot's length (ms); slot `n` covers `[n × STATS_SLOT_MS, (n + 1) × STATS_SLOT_MS)`. */
export const STATS_SLOT_MS = 5_000;
/** Slots in the window, the current (partial) one included: the last minute. */
export const STATS_WINDOW_SLOTS = 12;

/**
 * Upper bounds (ms) of the latency buckets; a last count holds what is above the last bound. Roughly
 * 1.5× apart: a quantile interpolated within a bucket is off by less than a third of its value.
 */
export const LATENCY_BUCKETS_MS = [
  0.25, 0.5, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1_000, 1_500, 2_000,
  3_000, 5_000, 7_500, 10_000, 15_000, 30_000, 60_000,
] as const;

/** What one process counted for one model version in one slot. */
export interface VersionSlot {
  /** The slot's number (`floor(ms / STATS_SLOT_MS)`). */
  slot: number;
  /** Requests finished (succeeded or failed) by this process. */
  finished: number;
  failed: number;
  /**
   * Finished requests by latency, acceptance to end: `latency[i]` counts those at most
   * `LATENCY_BUCKETS_MS[i]` (and above the bound before); the last entry those above every bound.
   * Trailing zeros are left out.
   */
  latency: number[];
  /** Model runs (a pipeline's requests run in none), the requests they ran, and the largest run. */
  batches: number;
  batchedRequests: number;
  largestBatch: number;
}

/** What one API process counted for one model in one slot: submissions that looked in the cache. */
export interface CacheSlot {
  slot: number;
  lookups: number;
  hits: number;
}

/** What one process writes (one field of `<prefix>:stats`): its slots within the window. */
export interface LiveStatsReport {
  /** The worker id (as in the fleet hash) or `api:<instance>`. */
  id: string;
  /** When the process began counting (ms): a window it was not up for all of is shorter for it. */
  startedAt: number;
  /** When it wrote this report (ms). */
  writtenAt: number;
  /** By `queueName(model, version)`. */
  versions: Record<string, VersionSlot[]>;
  /** By model name. */
  cache: Record<string, CacheSlot[]>;
}

export function slotOf(ms: number): number {
  return Math.floor(ms / STATS_SLOT_MS);
}

/** The first slot of the window that ends at `now`. */
export function firstSlotOfWindow(now: number): number {
  return slotOf(now) - STATS_WINDOW_SLOTS + 1;
}

/** The index of the latency bucket `ms` falls in. */
export function latencyBucketOf(ms: number): number {
  let index = 0;
  while (index < LATENCY_BUCKETS_MS.length && ms > LATENCY_BUCKETS_MS[index]!) index++;
  return index;
}

/**
 * One process's counts, recorded where they happen (a batch's end, a cache lookup) at the cost of a
 * few additions, and read as a report at most every few seconds. Not thread-safe: one per process.
 */
export class LiveStatsWindow {
  readonly startedAt: number;
  private readonly versions = new Map<string, VersionSlot[]>();
  private readonly cache = new Map<string, CacheSlot[]>();
  private changed = false;

  constructor(startedAt: number) {
    this.startedAt = startedAt;
  }

  /** Whether anything was recorded since the last `report`. */
  get dirty(): boolean {
    return this.changed;
  }

  /** Marks the window changed, so that the next flush writes it again (its last write failed). */
  touch(): void {
    this.changed = true;
  }

  /** One finished request of a version (`queueName`), `latencyMs` from its acceptance to its end. */
  finished(version: string, latencyMs: number, failed: boolean, now: number): void {
    const slot = this.versionSlot(version, now);
    slot.finished++;
    if (failed) slot.failed++;
    const bucket = latencyBucketOf(latencyMs);
    while (slot.latency.length <= bucket) slot.latency.push(0);
    slot.latency[bucket]!++;
  }

  /** One model run of `size` requests. */
  batch(version: string, size: number, now: number): void {
    const slot = this.versionSlot(version, now);
    slot.batches++;
    slot.batchedRequests += size;
    if (size > slot.largestBatch) slot.largestBatch = size;
  }

  /** Cache lookups of a model's submissions, and how many of them were hits. */
  cacheLookups(model: string, lookups: number, hits: number, now: number): void {
    if (lookups === 0) return;
    const slot = lastSlot(this.cache, model, now, (n) => ({ slot: n, lookups: 0, hits: 0 }));
    slot.lookups += lookups;
    slot.hits += hits;
    this.changed = true;
  }

  /** The slots within the window ending at `now` (older ones are forgotten here), as one report. */
  report(id: string, now: number): LiveStatsReport {
    const first = firstSlotOfWindow(now);
    this.changed = false;
    return {
      id,
      startedAt: this.startedAt,
      writtenAt: now,
      versions: prune(this.versions, first),
      cache: prune(this.cache, first),
    };
  }

  private versionSlot(version: string, now: number): VersionSlot {
    this.changed = true;
    return lastSlot(this.versions, version, now, (n) => ({
      slot: n,
      finished: 0,
      failed: 0,
      latency: [],
      batches: 0,
      batchedRequests: 0,
      largestBatch: 0,
    }));
  }
}

/** The slot of `now` for `key`, made when it is new (slots are appended in time order). */
function lastSlot<S extends { slot: number }>(
  slots: Map<string, S[]>,
  key: string,
  now: number,
  empty: (slot: number) => S,
): S {
  const n = slotOf(now);
  let list = slots.get(key);
  if (list === undefined) {
    list = [];
    slots.set(key, list);
  }
  const last = list.at(-1);
  // A clock stepped back keeps counting into the newest slot rather than reordering the list.
  if (last !== undefined && last.slot >= n) return last;
  const made = empty(n);
  list.push(made);
  return made;
}

/** Drops slots before `first` (and keys left with none); the rest as a plain object. */
function prune<S extends { slot: number }>(slots: Map<string, S[]>, first: number): Record<string, S[]> {
  const kept: Record<string, S[]> = {};
  for (const [key, list] of slots) {
    const from = list.findIndex((s) => s.slot >= first);
    if (from < 0) {
      slots.delete(key);
      continue;
    }
    if (from > 0) list.splice(0, from);
    kept[key] = list;
  }
  return kept;
}
