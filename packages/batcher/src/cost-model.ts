/**
 * What a batch of each size costs one model version on this worker: run time (ms) against rows,
 * measured at warm-up and kept current from live runs, plus the work every batch costs besides the
 * run (its overhead, learnt from live batches). From it come the two sizes the batcher uses:
 * the knee (the smallest batch whose items per second are within KNEE_SHARE of the best) and the
 * most efficient size (the best items per second).
 */

/** A batch at the knee has at least this share of the best items per second. */
export const KNEE_SHARE = 0.9;
/** Weight of a new observation in a size's running estimate (exponentially weighted mean). */
const SMOOTHING = 0.2;
/**
 * What a batch costs besides the model run until live batches have measured it (ms): the start and
 * complete scripts, stacking and splitting. A sub-millisecond model's batches are mostly this, so it
 * is what makes batching pay for them.
 */
export const DEFAULT_BATCH_OVERHEAD_MS = 0.5;

export interface CostPoint {
  /** Rows in the batch. */
  batchSize: number;
  /** Estimated run time of such a batch, in milliseconds. */
  ms: number;
  /** Runs the estimate is made of. */
  runs: number;
}

/** What the batcher reads from a cost model (a fake one in unit tests). */
export interface BatchCosts {
  /** Estimated run time of a batch of `batchSize` rows (ms); undefined until something is measured. */
  estimate(batchSize: number): number | undefined;
  /** The smallest batch size whose items per second are within KNEE_SHARE of the best; undefined until measured. */
  kneeBatchSize(): number | undefined;
  /** The batch size with the most items per second; undefined until measured. */
  bestBatchSize(): number | undefined;
}

/** A cost model that live runs keep current. */
export interface LiveCosts extends BatchCosts {
  /** Records one run of a batch of `batchSize` rows that took `ms`. */
  observe(batchSize: number, ms: number): void;
  /** Records what one batch cost besides its model run (ms). */
  observeOverhead(ms: number): void;
}

/**
 * A cost model and the batches it speaks for: those of one group key (one shape). A model with dynamic
 * dims costs what its inputs' size makes it (a 48×192 crop costs hundreds of times a 1×1 one), so the
 * measurements of one shape say nothing of another's batches.
 */
export interface ShapedCosts {
  groupKey: string;
  costs: LiveCosts;
}

export class CostModel implements LiveCosts {
  readonly maxBatchSize: number;
  /** Batch size -> running estimate. */
  readonly #points = new Map<number, CostPoint>();
  #overheadMs = DEFAULT_BATCH_OVERHEAD_MS;
  /** `#points` by size, until the next observation. */
  #sortedPoints: CostPoint[] | undefined;
  #sizes: { knee: number; best: number } | undefined;

  /** `overheadMs`: what a batch costs besides its run until live batches tell (default DEFAULT_BATCH_OVERHEAD_MS). */
  constructor(maxBatchSize: number, options: { overheadMs?: number } = {}) {
    if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1)
      throw new RangeError(`maxBatchSize must be an integer >= 1, got ${maxBatchSize}`);
    this.maxBatchSize = maxBatchSize;
    this.#overheadMs = options.overheadMs ?? DEFAULT_BATCH_OVERHEAD_MS;
  }

  /** Records one run of a batch of `batchSize` rows that took `ms`. */
  observe(batchSize: number, ms: number): void {
    if (!Number.isInteger(batchSize) || batchSize < 1 || !(ms >= 0) || !Number.isFinite(ms)) return;
    const point = this.#points.get(batchSize);
    if (point === undefined) this.#points.set(batchSize, { batchSize, ms, runs: 1 });
    else {
      point.ms += SMOOTHING * (ms - point.ms);
      point.runs++;
    }
    this.#sortedPoints = undefined;
    this.#sizes = undefined;
  }

  observeOverhead(ms: number): void {
    if (!(ms >= 0) || !Number.isFinite(ms)) return;
    this.#overheadMs += SMOOTHING * (ms - this.#overheadMs);
    this.#sizes = undefined;
  }

  /** What a batch costs besides its model run (ms). */
  get overheadMs(): number {
    return this.#overheadMs;
  }

  /** The measured sizes, smallest first. */
  points(): CostPoint[] {
    return this.#sorted().map((p) => ({ ...p }));
  }

  /** Run time of a batch of `batchSize` rows (`estimateBetween` the measured sizes). */
  estimate(batchSize: number): number | undefined {
    return estimateBetween(this.#sorted(), batchSize);
  }

  kneeBatchSize(): number | undefined {
    return this.#chosen()?.knee;
  }

  bestBatchSize(): number | undefined {
    return this.#chosen()?.best;
  }

  #sorted(): CostPoint[] {
    this.#sortedPoints ??= [...this.#points.values()].sort((a, b) => a.batchSize - b.batchSize);
    return this.#sortedPoints;
  }

  /** Items per millisecond of a batch of `size` rows, its overhead included. */
  #perMs(size: number): number {
    const ms = (this.estimate(size) ?? 0) + this.#overheadMs;
    // A batch measured at 0 ms (a clock's resolution) counts as the fastest a clock can tell.
    return size / Math.max(ms, 0.001);
  }

  #chosen(): { knee: number; best: number } | undefined {
    if (this.#sizes !== undefined || this.#points.size === 0) return this.#sizes;
    // Between two measured sizes (and past the largest) the cost is linear in rows, so items per ms
    // rise or fall monotonically: the best size is a measured one, or maxBatchSize.
    const candidates = this.#sorted()
      .map((p) => p.batchSize)
      .filter((size) => size < this.maxBatchSize);
    candidates.push(this.maxBatchSize);
    let best = candidates[0]!;
    for (const size of candidates) if (this.#perMs(size) > this.#perMs(best)) best = size;
    const threshold = KNEE_SHARE * this.#perMs(best);
    let knee = best;
    for (let size = 1; size < best; size++) {
      if (this.#perMs(size) >= threshold) {
        knee = size;
        break;
      }
    }
    this.#sizes = { knee, best };
    return this.#sizes;
  }
}

/**
 * The run time of a batch of `batchSize` rows from measured points (ascending by size): linear
 * between the nearest ones; beyond the largest, in proportion to rows (a batch costs at least what
 * its rows cost at the largest size measured); below the smallest, that size's time (a run has a
 * fixed cost). Undefined without points.
 */
export function estimateBetween(
  points: readonly { batchSize: number; ms: number }[],
  batchSize: number,
): number | undefined {
  if (points.length === 0) return undefined;
  const first = points[0]!;
  const last = points.at(-1)!;
  if (batchSize <= first.batchSize) return first.ms;
  if (batchSize >= last.batchSize) return (last.ms * batchSize) / last.batchSize;
  // The first measured size at or above batchSize (binary search: the batcher asks per batch).
  let low = 0;
  let high = points.length - 1;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (points[middle]!.batchSize < batchSize) low = middle + 1;
    else high = middle;
  }
  const above = points[low]!;
  const below = points[low - 1]!;
  const share = (batchSize - below.batchSize) / (above.batchSize - below.batchSize);
  return below.ms + share * (above.ms - below.ms);
}

/** The batch sizes a warm-up measures: 1, 2, 4 … up to and including `maxBatchSize`. */
export function warmupBatchSizes(maxBatchSize: number): number[] {
  const sizes: number[] = [];
  for (let size = 1; size < maxBatchSize; size *= 2) sizes.push(size);
  if (maxBatchSize >= 1) sizes.push(maxBatchSize);
  return sizes;
}
