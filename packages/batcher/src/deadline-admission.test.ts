import { describe, expect, it } from 'vitest';
import { deadlineBound, type ReportedBatchCosts } from './deadline-admission.ts';

/** 8 rows in 9 ms, plus 1 ms of overhead: a round of best-size batches every 10 ms. */
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
  // Batches cost their interpolated run time plus 1 ms: 3 ms for 1 row, 5 ms for 3, 10 ms for 8.
  it('lets wait ahead what full rounds of best-size batches and the largest last batch that fits clear', () => {
    // 35 ms: 3 rounds of 10 ms (24 requests), then 5 ms left: a batch of 3 (5 ms). 27 in all, so 26 ahead.
    expect(deadlineBound(costs, 1, 35)).toEqual({ maxWaitingAhead: 26, itemsPerSecond: 800 });
    // Two workers clear two batches a round, and share the last: twice as many.
    expect(deadlineBound(costs, 2, 35)).toEqual({ maxWaitingAhead: 53, itemsPerSecond: 1600 });
    // Exactly one round, nothing left.
    expect(deadlineBound(costs, 1, 10)).toEqual({ maxWaitingAhead: 7, itemsPerSecond: 800 });
  });

  it('judges a short queue by the small batch that clears it, not by a full round', () => {
    // 9.99 ms holds no round of 10 ms, but a batch of 7 (9 ms): 6 may wait ahead.
    expect(deadlineBound(costs, 1, 9.99)?.maxWaitingAhead).toBe(6);
  });

  it('lets none wait ahead when not even a batch of one fits (only an empty queue admits the request)', () => {
    expect(deadlineBound(costs, 1, 2.5)?.maxWaitingAhead).toBe(-1);
    expect(deadlineBound(costs, 3, 0)?.maxWaitingAhead).toBe(-1);
    expect(deadlineBound(costs, 1, -50)?.maxWaitingAhead).toBe(-1);
  });

  it('costs a best size beyond the measured ones in proportion to its rows', () => {
    const extrapolated = { ...costs, bestBatchSize: 16 };
    // 16 rows: 9 × 2 = 18 ms + 1 ms overhead = 19 ms a round; 40 ms holds 2 rounds of 16, and 2 ms
    // left hold no batch.
    expect(deadlineBound(extrapolated, 1, 40)?.maxWaitingAhead).toBe(31);
  });

  it('has nothing to go by without measurements, without a live worker, or without a deadline', () => {
    expect(deadlineBound(undefined, 1, 100)).toBeUndefined();
    expect(deadlineBound({ ...costs, batchSizes: [] }, 1, 100)).toBeUndefined();
    expect(deadlineBound(costs, 0, 100)).toBeUndefined();
    expect(deadlineBound(costs, 1, Number.POSITIVE_INFINITY)).toBeUndefined();
  });
});
