import { describe, expect, it } from 'vitest';
import { LatencyHistogram } from './latency.ts';

/** HDR with 3 significant digits: every reported value within 0.1% of the exact one. */
function expectWithinHdrPrecision(actual: number, exact: number): void {
  expect(Math.abs(actual - exact)).toBeLessThanOrEqual(exact * 1e-3);
}

describe('LatencyHistogram', () => {
  it('gives the order statistics of 1 µs … 10 ms in 1 µs steps', () => {
    const h = new LatencyHistogram();
    for (let micros = 1; micros <= 10_000; micros++) h.record(micros / 1000);
    const s = h.summary();
    expect(s.count).toBe(10_000);
    // The p-th percentile of 1..10000 is the value with p% of the samples at or below it.
    expectWithinHdrPrecision(s.p50Ms, 5);
    expectWithinHdrPrecision(s.p90Ms, 9);
    expectWithinHdrPrecision(s.p99Ms, 9.9);
    expectWithinHdrPrecision(s.p999Ms, 9.99);
    expectWithinHdrPrecision(s.maxMs, 10);
    expect(s.minMs).toBe(0.001);
    expectWithinHdrPrecision(s.meanMs, 5.0005);
  });

  it('separates a bimodal distribution exactly at its boundary', () => {
    const h = new LatencyHistogram();
    for (let i = 0; i < 990; i++) h.record(1);
    for (let i = 0; i < 10; i++) h.record(100);
    // 99% of the samples are 1 ms: p50 and p99 are exactly 1 ms, p99.9 falls in the 100 ms mode.
    expect(h.percentileMs(50)).toBe(1);
    expect(h.percentileMs(99)).toBe(1);
    expectWithinHdrPrecision(h.percentileMs(99.9), 100);
    expectWithinHdrPrecision(h.summary().maxMs, 100);
  });

  it('keeps values under 2.048 ms exact to the microsecond', () => {
    const h = new LatencyHistogram();
    for (const ms of [0.25, 0.5, 1.234, 1.5, 2.047]) h.record(ms);
    expect(h.percentileMs(0)).toBe(0.25);
    expect(h.percentileMs(50)).toBe(1.234);
    expect(h.percentileMs(100)).toBe(2.047);
  });

  it('records a negative difference as zero and reports zeros when empty', () => {
    const empty = new LatencyHistogram();
    expect(empty.summary()).toEqual({
      count: 0,
      meanMs: 0,
      minMs: 0,
      p50Ms: 0,
      p90Ms: 0,
      p99Ms: 0,
      p999Ms: 0,
      maxMs: 0,
    });
    const h = new LatencyHistogram();
    h.record(-0.3);
    expect(h.count).toBe(1);
    expect(h.percentileMs(100)).toBe(0);
  });

  it('clamps a value beyond two minutes instead of failing', () => {
    const h = new LatencyHistogram();
    h.record(10 * 60_000);
    expectWithinHdrPrecision(h.summary().maxMs, 120_000);
  });
});
