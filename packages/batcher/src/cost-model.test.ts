import { describe, expect, it } from 'vitest';
import { batchSize } from './batch-sizing.ts';
import { type BatchCosts, CostModel, warmupBatchSizes } from './cost-model.ts';

/** A cost model measured at the given sizes, once each; no overhead besides the runs unless given. */
function measured(maxBatchSize: number, runs: Record<number, number>, overheadMs = 0): CostModel {
  const model = new CostModel(maxBatchSize, { overheadMs });
  for (const [size, ms] of Object.entries(runs)) model.observe(Number(size), ms);
  return model;
}

/** A fake cost model: fixed knee and best sizes. */
function fixed(knee: number, best: number): BatchCosts {
  return { estimate: () => 1, kneeBatchSize: () => knee, bestBatchSize: () => best };
}

describe('CostModel', () => {
  it('knows nothing before a run is observed', () => {
    const model = new CostModel(32);
    expect(model.estimate(8)).toBeUndefined();
    expect(model.kneeBatchSize()).toBeUndefined();
    expect(model.bestBatchSize()).toBeUndefined();
  });

  it('interpolates linearly between measured sizes, scales by rows past the largest, and keeps the fixed cost below the smallest', () => {
    const model = measured(64, { 2: 4, 4: 6, 8: 10 });
    expect(model.estimate(1)).toBe(4);
    expect(model.estimate(3)).toBe(5);
    expect(model.estimate(6)).toBe(8);
    expect(model.estimate(16)).toBe(20);
  });

  it('keeps a running estimate per size from live runs', () => {
    const model = measured(8, { 4: 10 });
    model.observe(4, 20);
    expect(model.estimate(4)).toBe(12);
    expect(model.points()).toEqual([{ batchSize: 4, ms: 12, runs: 2 }]);
  });

  it('ignores runs that say nothing: no rows, a negative or infinite time', () => {
    const model = new CostModel(8);
    model.observe(0, 1);
    model.observe(2, -1);
    model.observe(2, Number.POSITIVE_INFINITY);
    expect(model.points()).toEqual([]);
  });

  it('puts the knee where items per second stop rising, and the best size at their peak', () => {
    // ppocr-cls on the bench machine, roughly: items/s 333, 571, 889, 1,290, 1,231, 1,103.
    const model = measured(32, { 1: 3, 2: 3.5, 4: 4.5, 8: 6.2, 16: 13, 32: 29 });
    expect(model.bestBatchSize()).toBe(8);
    // 7 rows: 5.775 ms, 1,212 items/s (94% of the best); 6 rows: 5.35 ms, 1,121 items/s (87%).
    expect(model.kneeBatchSize()).toBe(7);
  });

  it('puts knee and best at the largest size when every size pays', () => {
    const model = measured(16, { 1: 10, 2: 10, 4: 10, 8: 10, 16: 10 });
    expect(model.bestBatchSize()).toBe(16);
    expect(model.kneeBatchSize()).toBe(15);
  });

  it('puts both at 1 when batching saves nothing', () => {
    const model = measured(8, { 1: 2, 2: 4, 4: 8, 8: 16 });
    expect(model.bestBatchSize()).toBe(1);
    expect(model.kneeBatchSize()).toBe(1);
  });

  it("counts each batch's overhead: for a model whose runs cost little, batching pays up to the largest size", () => {
    // Runs of 0.002 ms + 0.01 ms a row: counting the runs alone, 2 rows are within 90% of the best.
    const runs = { 1: 0.012, 2: 0.022, 4: 0.042, 8: 0.082, 16: 0.162, 32: 0.322 };
    expect(measured(32, runs).kneeBatchSize()).toBe(2);
    // With 0.5 ms of scripts per batch besides the run, shared by more rows the bigger the batch.
    const withOverhead = measured(32, runs, 0.5);
    expect(withOverhead.bestBatchSize()).toBe(32);
    expect(withOverhead.kneeBatchSize()).toBe(28);
    // Live batches teach it: 20 batches that each cost 2 ms besides the run.
    for (let i = 0; i < 20; i++) withOverhead.observeOverhead(2);
    expect(withOverhead.overheadMs).toBeCloseTo(1.983, 3);
    expect(withOverhead.kneeBatchSize()).toBe(29);
  });

  it('measures 1, 2, 4 … up to maxBatchSize at warm-up', () => {
    expect(warmupBatchSizes(1)).toEqual([1]);
    expect(warmupBatchSizes(8)).toEqual([1, 2, 4, 8]);
    expect(warmupBatchSizes(24)).toEqual([1, 2, 4, 8, 16, 24]);
  });
});

describe('batchSize', () => {
  it('runs every item alone for a model without a batch axis', () => {
    expect(batchSize({ maxBatchSize: 0, costs: fixed(4, 8) }, 10)).toEqual({ closeAt: 1, takeAtMost: 1 });
  });

  it('closes at maxBatchSize while no cost is known', () => {
    expect(batchSize({ maxBatchSize: 32 }, 3)).toEqual({ closeAt: 32, takeAtMost: 32 });
    expect(batchSize({ maxBatchSize: 32, costs: new CostModel(32) }, 3)).toEqual({
      closeAt: 32,
      takeAtMost: 32,
    });
  });

  it('closes at the knee, and with a backlog past it takes up to the most efficient size', () => {
    const options = { maxBatchSize: 32, costs: fixed(6, 8) };
    expect(batchSize(options, 1)).toEqual({ closeAt: 6, takeAtMost: 6 });
    expect(batchSize(options, 6)).toEqual({ closeAt: 6, takeAtMost: 6 });
    expect(batchSize(options, 7)).toEqual({ closeAt: 6, takeAtMost: 8 });
    expect(batchSize(options, 40)).toEqual({ closeAt: 6, takeAtMost: 8 });
  });

  it('follows preferredBatchSizes over the cost model (Triton): the largest preferred size that fits', () => {
    const options = { maxBatchSize: 32, preferredBatchSizes: [4, 16], costs: fixed(6, 8) };
    expect(batchSize(options, 2)).toEqual({ closeAt: 16, takeAtMost: 2 });
    expect(batchSize(options, 5)).toEqual({ closeAt: 16, takeAtMost: 4 });
    expect(batchSize(options, 15)).toEqual({ closeAt: 16, takeAtMost: 4 });
    expect(batchSize(options, 40)).toEqual({ closeAt: 16, takeAtMost: 16 });
  });
});
