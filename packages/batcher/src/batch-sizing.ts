import type { BatchCosts } from './cost-model.ts';

/** Where a forming batch of one group closes, given the rows waiting in that group. */
export interface BatchSize {
  /** Rows at which the batch goes without waiting longer for companions. */
  closeAt: number;
  /** Most rows it takes (the oldest items first; one item of more rows still runs, alone). */
  takeAtMost: number;
}

export interface BatchSizingOptions {
  /** Rows per batch at most; 0: the model has no batch axis. */
  maxBatchSize: number;
  /** Triton's preferred batch sizes (ascending, each <= maxBatchSize); empty: none. */
  preferredBatchSizes?: readonly number[];
  /** The version's cost model; absent, or not measured yet: batches close at maxBatchSize. */
  costs?: BatchCosts;
}

/**
 * The batch size policy (docs/design.md, "Batch sizes"):
 *
 * - With `preferredBatchSizes` (Triton's semantics): a batch closes once the largest preferred size
 *   has arrived and takes the largest preferred size that fits in what waits; closed earlier (its
 *   delay spent, or the model idle), it takes what there is.
 * - With a cost model: a batch closes at the knee, where items per second stop rising; when more
 *   than that waits (a backlog), it takes up to the most efficient size, which clears it fastest.
 * - Neither: it closes at maxBatchSize, as a size- and time-bounded batcher does.
 *
 * Bigger batches past the knee only add waiting: each of their items waits for the whole run.
 */
export function batchSize(options: BatchSizingOptions, waitingRows: number): BatchSize {
  const { maxBatchSize } = options;
  if (maxBatchSize === 0) return { closeAt: 1, takeAtMost: 1 };
  const preferred = options.preferredBatchSizes ?? [];
  if (preferred.length > 0) {
    const largest = preferred.at(-1)!;
    const fitting = preferred.filter((size) => size <= waitingRows).at(-1);
    return { closeAt: largest, takeAtMost: fitting ?? Math.min(waitingRows, maxBatchSize) };
  }
  const knee = options.costs?.kneeBatchSize();
  const best = options.costs?.bestBatchSize();
  if (knee === undefined || best === undefined) return { closeAt: maxBatchSize, takeAtMost: maxBatchSize };
  const closeAt = Math.min(knee, maxBatchSize);
  return { closeAt, takeAtMost: waitingRows > closeAt ? Math.min(best, maxBatchSize) : closeAt };
}
