/**
 * Seeded pseudo-random numbers, so that a benchmark run sends the same inputs and the same arrival
 * schedule every time (a run differs from the last one only by what it measures).
 */

/** A uniform generator on [0, 1). */
export type Rng = () => number;

/**
 * SplitMix32-style generator: a 32-bit counter stepped by the golden-ratio increment, then mixed.
 * Statistically plenty for arrival times and tensor contents, and trivially reproducible.
 */
export function createRng(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z = (z ^ (z >>> 16)) >>> 0;
    return z / 0x1_0000_0000;
  };
}

/** An exponentially distributed sample with the given mean (inverse-CDF method). */
export function exponential(rng: Rng, mean: number): number {
  // 1 - u lies in (0, 1], so the logarithm is always finite.
  return -mean * Math.log(1 - rng());
}
