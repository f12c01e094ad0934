/**
 * Early refusal (docs/design.md, "Deadlines"): how many requests may wait ahead of a new one for it to
 * still end within its deadline, given what a batch costs and how many workers serve the version.
 * The submit script refuses a request when more wait (never into an empty queue, never while the
 * queue is paused), so a request that would miss its deadline is told at once, with when to retry,
 * instead of after waiting for it.
 */

/** A version's measured batch costs, as a worker reports them (`BatchCostProfile`). */
export interface ReportedBatchCosts {
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
 * Backlog is cleared in batches of the most efficient size, `workers` of them at a time, each taking
 * that size's run time plus its overhead. A request behind `n` others ends with batch round
 * ⌊n / (best × workers)⌋ + 1, so it meets a budget of `budgetMs` while n < ⌊budgetMs / round⌋ ×
 * best × workers. Undefined when there is nothing to go by (no measurement, no live worker).
 */
export function deadlineBound(
  costs: ReportedBatchCosts | undefined,
  workers: number,
  budgetMs: number,
): DeadlineBound | undefined {
  if (costs === undefined || !(workers >= 1) || !Number.isFinite(budgetMs)) return undefined;
  const best = costs.bestBatchSize;
  const measured = costs.batchSizes.find((point) => point.batchSize === best) ?? costs.batchSizes.at(-1);
  if (measured === undefined || !(best >= 1)) return undefined;
  // Past the largest measured size a batch costs in proportion to its rows (the cost model's rule).
  const runMs = measured.batchSize === best ? measured.ms : (measured.ms * best) / measured.batchSize;
  const roundMs = Math.max(runMs + costs.overheadMs, 0.001);
  const perRound = best * Math.floor(workers);
  const rounds = Math.floor(Math.max(0, budgetMs) / roundMs);
  return { maxWaitingAhead: rounds * perRound - 1, itemsPerSecond: (perRound / roundMs) * 1000 };
}
