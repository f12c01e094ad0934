import { describe, expect, it } from 'vitest';
import { retryDelayMs } from './retry.ts';

const schedule = { baseMs: 1000, maxMs: 60_000 };

describe('retryDelayMs', () => {
  it('doubles the ceiling per attempt up to the maximum', () => {
    const atCeiling = () => 0.999_999_999;
    expect([1, 2, 3, 4, 5, 6, 7, 8, 20].map((attempt) => retryDelayMs(attempt, schedule, atCeiling))).toEqual(
      [999, 1999, 3999, 7999, 15999, 31999, 59999, 59999, 59999],
    );
  });

  it('draws uniformly below the ceiling (full jitter)', () => {
    expect(retryDelayMs(3, schedule, () => 0)).toBe(0);
    expect(retryDelayMs(3, schedule, () => 0.5)).toBe(2000);
    expect(retryDelayMs(3, schedule, () => 0.25)).toBe(1000);
  });

  it('stays finite for absurd attempt numbers', () => {
    expect(retryDelayMs(10_000, schedule, () => 0.5)).toBe(30_000);
  });
});
