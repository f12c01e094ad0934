export interface RetrySchedule {
  /** Ceiling of the delay after the first failed attempt. */
  baseMs: number;
  /** The ceiling stops doubling here. */
  maxMs: number;
}

/**
 * Delay before the next attempt once attempt number `attempt` (1 = the first) has failed:
 * exponential backoff with full jitter, uniform in [0, min(maxMs, baseMs * 2^(attempt - 1))).
 * The jitter spreads the retries of many webhooks that failed together (a receiver that was down)
 * instead of sending them back at the same instant.
 */
export function retryDelayMs(
  attempt: number,
  schedule: RetrySchedule,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(schedule.maxMs, schedule.baseMs * 2 ** Math.min(Math.max(attempt - 1, 0), 52));
  return Math.floor(random() * ceiling);
}
