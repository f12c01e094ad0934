import { describe, expect, it } from 'vitest';
import { type ServerCounters, serverTimingsBetween } from './load-curves.ts';

function counters(
  total: [number, number],
  queue: [number, number],
  met: number,
  missed: number,
): ServerCounters {
  return {
    phases: {
      total: { sum: total[0], count: total[1] },
      queue: { sum: queue[0], count: queue[1] },
      batch_wait: { sum: 0, count: total[1] },
      inference: { sum: total[1] * 0.002, count: total[1] },
    },
    met,
    missed,
  };
}

describe('serverTimingsBetween', () => {
  it('gives the mean of each phase and the share within the objective between two readings', () => {
    const before = counters([1, 100], [0.5, 100], 90, 10);
    // 200 more requests: 8 s in all (40 ms each), 6 s queued (30 ms each); 150 met, 50 missed.
    const after = counters([9, 300], [6.5, 300], 240, 60);
    const timings = serverTimingsBetween(before, after)!;
    expect(timings.requests).toBe(200);
    expect(timings.totalMs).toBeCloseTo(40, 9);
    expect(timings.queueMs).toBeCloseTo(30, 9);
    expect(timings.batchWaitMs).toBe(0);
    expect(timings.inferenceMs).toBeCloseTo(2, 9);
    expect(timings.metObjective).toBe(0.75);
  });

  it('says nothing when no request ended, and leaves the objective out where none was judged', () => {
    const reading = counters([1, 100], [0.5, 100], 0, 0);
    expect(serverTimingsBetween(reading, reading)).toBeUndefined();
    const later = counters([2, 110], [1, 110], 0, 0);
    expect(serverTimingsBetween(reading, later)?.metObjective).toBeUndefined();
  });
});
