import { describe, expect, it } from 'vitest';
import { createRng, exponential } from './random.ts';
import { firstNotDue, poissonSchedule } from './schedule.ts';

function gaps(schedule: Float64Array): number[] {
  return Array.from(schedule, (t, i) => t - (i === 0 ? 0 : (schedule[i - 1] as number)));
}

describe('poissonSchedule', () => {
  const rate = 1000;
  const durationMs = 60_000;
  const schedule = poissonSchedule({ ratePerSecond: rate, durationMs, seed: 42 });
  const expectedCount = (rate * durationMs) / 1000;

  it('sends a Poisson-distributed count: within 4 standard deviations of rate × duration', () => {
    // The count of a Poisson process over T has mean and variance rate × T.
    const sd = Math.sqrt(expectedCount);
    expect(Math.abs(schedule.length - expectedCount)).toBeLessThanOrEqual(4 * sd);
  });

  it('has exponential gaps: mean 1/rate within 4 standard errors, coefficient of variation 1', () => {
    const g = gaps(schedule);
    const meanGap = g.reduce((a, b) => a + b, 0) / g.length;
    const expectedMean = 1000 / rate;
    // An exponential's standard deviation equals its mean, so the mean of n gaps has sd mean/√n.
    expect(Math.abs(meanGap - expectedMean)).toBeLessThanOrEqual((4 * expectedMean) / Math.sqrt(g.length));
    const variance = g.reduce((sum, x) => sum + (x - meanGap) ** 2, 0) / (g.length - 1);
    expect(Math.sqrt(variance) / meanGap).toBeGreaterThan(0.97);
    expect(Math.sqrt(variance) / meanGap).toBeLessThan(1.03);
  });

  it('has gaps whose distribution function matches 1 − e^(−x/mean) at several quantiles', () => {
    const g = gaps(schedule);
    const mean = 1000 / rate;
    for (const x of [0.1, 0.5, 1, 2, 3]) {
      const share = g.filter((gap) => gap <= x * mean).length / g.length;
      const expected = 1 - Math.exp(-x);
      // Binomial standard error of a proportion over n samples.
      const se = Math.sqrt((expected * (1 - expected)) / g.length);
      expect(Math.abs(share - expected)).toBeLessThanOrEqual(4 * se);
    }
  });

  it('is ascending and inside [0, duration)', () => {
    const misplaced = Array.from(schedule).filter(
      (t, i) => t < (i === 0 ? 0 : (schedule[i - 1] as number)) || t >= durationMs,
    );
    expect(misplaced).toEqual([]);
  });

  it('is the same for the same seed and differs for another', () => {
    const again = poissonSchedule({ ratePerSecond: rate, durationMs, seed: 42 });
    expect(Array.from(again)).toEqual(Array.from(schedule));
    const other = poissonSchedule({ ratePerSecond: rate, durationMs, seed: 43 });
    expect(Array.from(other.slice(0, 10))).not.toEqual(Array.from(schedule.slice(0, 10)));
  });

  it('scales with the rate: 50 req/s over 20 s sends about 1000', () => {
    const slow = poissonSchedule({ ratePerSecond: 50, durationMs: 20_000, seed: 7 });
    expect(Math.abs(slow.length - 1000)).toBeLessThanOrEqual(4 * Math.sqrt(1000));
  });

  it('refuses a rate or duration that is not positive', () => {
    expect(() => poissonSchedule({ ratePerSecond: 0, durationMs: 1000, seed: 1 })).toThrow(RangeError);
    expect(() => poissonSchedule({ ratePerSecond: Number.NaN, durationMs: 1000, seed: 1 })).toThrow(
      RangeError,
    );
    expect(() => poissonSchedule({ ratePerSecond: 10, durationMs: 0, seed: 1 })).toThrow(RangeError);
  });
});

describe('firstNotDue', () => {
  const schedule = Float64Array.from([1, 2, 2, 5, 9]);

  it('skips every arrival at or before now', () => {
    expect(firstNotDue(schedule, 0, 0.5)).toBe(0);
    expect(firstNotDue(schedule, 0, 2)).toBe(3);
    expect(firstNotDue(schedule, 3, 8.99)).toBe(4);
    expect(firstNotDue(schedule, 0, 100)).toBe(5);
  });

  it('starts from the given index', () => {
    expect(firstNotDue(schedule, 4, 0)).toBe(4);
    expect(firstNotDue(schedule, 5, 100)).toBe(5);
  });
});

describe('createRng and exponential', () => {
  it('draws uniform values in [0, 1) with mean 1/2', () => {
    const rng = createRng(3);
    const n = 100_000;
    let sum = 0;
    let outside = 0;
    for (let i = 0; i < n; i++) {
      const u = rng();
      if (u < 0 || u >= 1) outside++;
      sum += u;
    }
    expect(outside).toBe(0);
    // Uniform [0,1): variance 1/12.
    expect(Math.abs(sum / n - 0.5)).toBeLessThanOrEqual(4 * Math.sqrt(1 / 12 / n));
  });

  it('draws exponentials with the requested mean', () => {
    const rng = createRng(11);
    const n = 100_000;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += exponential(rng, 2.5);
    expect(Math.abs(sum / n - 2.5)).toBeLessThanOrEqual((4 * 2.5) / Math.sqrt(n));
  });
});
