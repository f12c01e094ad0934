import { createRng, exponential } from './random.ts';

export interface PoissonScheduleOptions {
  /** Mean arrivals per second. */
  ratePerSecond: number;
  /** Length of the window; every arrival falls in [0, durationMs). */
  durationMs: number;
  seed: number;
}

/**
 * Send times (ms from the start, ascending) of a Poisson arrival process: inter-arrival gaps are
 * independent exponentials with mean 1000 / rate. The schedule is fixed before the first request
 * leaves, so a slow answer never delays a later send (the load is open-loop).
 */
export function poissonSchedule(options: PoissonScheduleOptions): Float64Array {
  const { ratePerSecond, durationMs, seed } = options;
  if (!(ratePerSecond > 0) || !Number.isFinite(ratePerSecond)) {
    throw new RangeError(`rate must be a positive number of requests per second, got ${ratePerSecond}`);
  }
  if (!(durationMs > 0)) throw new RangeError(`duration must be positive, got ${durationMs} ms`);
  const rng = createRng(seed);
  const meanGapMs = 1000 / ratePerSecond;
  // Room for the mean count plus ten standard deviations; grown if ever exceeded.
  const expected = (ratePerSecond * durationMs) / 1000;
  let times = new Float64Array(Math.ceil(expected + 10 * Math.sqrt(expected) + 16));
  let count = 0;
  let t = exponential(rng, meanGapMs);
  while (t < durationMs) {
    if (count === times.length) {
      const grown = new Float64Array(times.length * 2);
      grown.set(times);
      times = grown;
    }
    times[count++] = t;
    t += exponential(rng, meanGapMs);
  }
  return times.slice(0, count);
}

/**
 * The index of the first arrival still in the future at `nowMs`, searching from `from` (arrivals
 * before it were already sent). Everything in [from, result) is due: a dispatcher that woke late
 * sends all of it at once, each request still timed from its own scheduled instant.
 */
export function firstNotDue(schedule: Float64Array, from: number, nowMs: number): number {
  let index = from;
  while (index < schedule.length && (schedule[index] as number) <= nowMs) index++;
  return index;
}
