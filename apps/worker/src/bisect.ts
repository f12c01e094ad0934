/**
 * Poison isolation. One input that makes the model throw fails the whole batch it was stacked into;
 * retrying the whole batch would fail the innocent requests with it and spend their attempts.
 * Instead the worker re-runs the two halves of a failed batch separately, each of which bisects again
 * if it fails, until the failing requests stand alone: only they go on to their retries.
 *
 * Cost: with one poison request in a batch of n, about 2·log2(n) extra runs, all on inputs smaller
 * than the original batch; when every request fails (the model itself is broken), 2n - 1 runs.
 */

export interface BisectHooks<T> {
  /** Runs a part of the batch; it calls `bisectFailedRun` itself when that run fails. */
  rerun(part: T[]): Promise<void>;
  /** Handles a request whose run failed on its own: retry it later or end it `failed`. */
  fail(single: T[], error: Error): Promise<void>;
}

/**
 * Called when a run of `items` failed with `error`: a lone request is failed, a larger batch is
 * split in two halves (the first one the larger by one when the count is odd) run one after the other.
 */
export async function bisectFailedRun<T>(
  items: readonly T[],
  error: Error,
  hooks: BisectHooks<T>,
): Promise<void> {
  if (items.length <= 1) {
    await hooks.fail([...items], error);
    return;
  }
  const [first, second] = halves(items);
  await hooks.rerun(first);
  await hooks.rerun(second);
}

/** Splits `items` in two non-empty halves, keeping their order; the first gets the odd one. */
export function halves<T>(items: readonly T[]): [T[], T[]] {
  if (items.length < 2) throw new RangeError(`cannot halve ${items.length} item(s)`);
  const middle = Math.ceil(items.length / 2);
  return [items.slice(0, middle), items.slice(middle)];
}
