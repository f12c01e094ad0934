import { describe, expect, it } from 'vitest';
import { deadlineBound, type ReportedBatchCosts } from './deadline-admission.ts';

/** 8 rows in 9 ms, plus 1 ms of overhead: a round of batches every 10 ms. */
const costs: ReportedBatchCosts = {
  batchSizes: [
    { batchSize: 1, ms: 2 },
    { batchSize: 4, ms: 5 },
    { batchSize: 8, ms: 9 },
  ],
  overheadMs: 1,
  bestBatchSize: 8,
};

describe('deadlineBound', () => {
  it('lets as many wait ahead as whole rounds of best-size batches fit in the budget', () => {
    // 35 ms: 3 rounds of 10 ms, 8 requests each on one worker: 24 may be ahead of it (0..23).
    expect(deadlineBound(costs, 1, 35)).toEqual({ maxWaitingAhead: 23, itemsPerSecond: 800 });
    // Two workers run two batches a round.
    expect(deadlineBound(costs, 2, 35)).toEqual({ maxWaitingAhead: 47, itemsPerSecond: 1600 });
    // Exactly one round.
    expect(deadlineBound(costs, 1, 10)).toEqual({ maxWaitingAhead: 7, itemsPerSecond: 800 });
  });

  it('lets none wait ahead when not even one round fits (only an empty queue admits the request)', () => {
    expect(deadlineBound(costs, 1, 9.99)?.maxWaitingAhead).toBe(-1);
    expect(deadlineBound(costs, 3, 0)?.maxWaitingAhead).toBe(-1);
    expect(deadlineBound(costs, 1, -50)?.maxWaitingAhead).toBe(-1);
  });

  it('costs a best size beyond the measured ones in proportion to its rows', () => {
    const extrapolated = { ...costs, bestBatchSize: 16 };
    // 16 rows: 9 × 2 = 18 ms + 1 ms overhead = 19 ms a round; 40 ms holds 2 rounds of 16.
    expect(deadlineBound(extrapolated, 1, 40)?.maxWaitingAhead).toBe(31);
  });

  it('has nothing to go by without measurements, without a live worker, or without a deadline', () => {
    expect(deadlineBound(undefined, 1, 100)).toBeUndefined();
    expect(deadlineBound({ ...costs, batchSizes: [] }, 1, 100)).toBeUndefined();
    expect(deadlineBound(costs, 0, 100)).toBeUndefined();
    expect(deadlineBound(costs, 1, Number.POSITIVE_INFINITY)).toBeUndefined();
  });
});
