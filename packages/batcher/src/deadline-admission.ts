import { estimateBetween } from './cost-model.ts';

/**
 * Early refusal (docs/design.md, "Deadlines"): how many requests may wait ahead of a new one for it to
 * still end within its deadline, given what a batch costs and how many workers serve the version.
 * The submit script refuses a request when more wait (never into an empty queue, never while the
 * queue is paused), so a request that would miss its deadline is told at once, with when to retry,
 * instead of after waiting for it.
 */

/** A version's measured batch costs, as a worker reports them (`BatchCostProfile`). */
export interface ReportedBatchCosts {
  /** Smallest first, as reported. */
  batchSizes: readonly { batchSize: number; ms: number }[];
  overheadMs: number;
  bestBatchSize: number;
}

export interface DeadlineBound {
  /** Most requests that may wait ahead of this one; -1: none may (only an empty queue admits it). */
  maxWaitingAhead: number;
  /** Requests a second the fleet clears while it has a backlog: how fast the queue drains. */
  itemsPerSecond: number;
}

/**
 * A backlog is cleared in rounds: one batch of the most efficient size per worker at a time, each
 * taking that size's run time plus the overhead. A request behind `n` others ends in the round that
 * reaches it, and the last round is only as large as what is left: the `r` requests left over are
 * shared by the workers, ⌈r / workers⌉ each, and cost that batch size's time. So a request meets a
 * budget of `budgetMs` while `n + 1 ≤ k × best × workers + s × workers`, where `k` is the full rounds
 * that fit in the budget and `s` the largest batch that fits in what is left of it. Undefined when
 * there is nothing to go by (no measurement, no live worker, no deadline).
 */
export function deadlineBound(
  costs: ReportedBatchCosts | undefined,
  workers: number,
  budgetMs: number,
): DeadlineBound | undefined {
  if (costs === undefined || !(workers >= 1) || !Number.isFinite(budgetMs)) return undefined;
  const best = costs.bestBatchSize;
  const points = costs.batchSizes;
  if (points.length === 0 || !(best >= 1)) return undefined;
  const fleet = Math.floor(workers);
  const batchMs = (size: number): number =>
    Math.max(estimateBetween(points, size)! + costs.overheadMs, 0.001);
  const roundMs = batchMs(best);
  const budget = Math.max(0, budgetMs);
  const rounds = Math.floor(budget / roundMs);
  const left = budget - rounds * roundMs;
  // The largest last batch that fits in what is left (run times rise with size).
  let lastBatch = 0;
  for (let size = 1; size < best && batchMs(size) <= left; size++) lastBatch = size;
  return {
    maxWaitingAhead: (rounds * best + lastBatch) * fleet - 1,
    itemsPerSecond: ((best * fleet) / roundMs) * 1000,
  };
}
