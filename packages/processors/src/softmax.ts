/** Softmax over the last axis, top-k and label mapping: the common tail of a classifier. */

/** Softmax of each row of `width` values (row-major), computed stably (the row's maximum subtracted). */
export function softmaxRows(values: ArrayLike<number>, width: number): Float32Array {
  if (!(width >= 1) || values.length % width !== 0) {
    throw new RangeError(`${values.length} values are not whole rows of ${width}`);
  }
  const out = new Float32Array(values.length);
  for (let row = 0; row < values.length; row += width) {
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < width; i++) max = Math.max(max, values[row + i] ?? 0);
    let sum = 0;
    for (let i = 0; i < width; i++) {
      const e = Math.exp((values[row + i] ?? 0) - max);
      out[row + i] = e;
      sum += e;
    }
    for (let i = 0; i < width; i++) out[row + i] = (out[row + i] ?? 0) / sum;
  }
  return out;
}

/** One of a row's best: its index, its label (where labels are given) and its score. */
export interface Ranked {
  index: number;
  label?: string;
  score: number;
}

/** The `k` highest of one row, highest first; equal scores keep index order. */
export function topK(row: ArrayLike<number>, k: number, labels?: readonly string[]): Ranked[] {
  const indices = Array.from({ length: row.length }, (_, i) => i);
  indices.sort((a, b) => (row[b] ?? 0) - (row[a] ?? 0) || a - b);
  return indices.slice(0, Math.max(0, k)).map((index) => ({
    index,
    ...(labels?.[index] === undefined ? {} : { label: labels[index] }),
    score: row[index] ?? 0,
  }));
}
