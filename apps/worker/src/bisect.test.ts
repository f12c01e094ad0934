import { describe, expect, it } from 'vitest';
import { bisectFailedRun, halves } from './bisect.ts';

/**
 * A stand-in for ModelWorker.runGroup: runs a batch on a model that throws when any input is
 * poisoned, and bisects on failure exactly as the worker does.
 */
function simulate(poisoned: ReadonlySet<number>) {
  const runs: number[][] = [];
  const succeeded: number[] = [];
  const failed: { items: number[]; message: string }[] = [];
  const runGroup = async (batch: number[]): Promise<void> => {
    runs.push(batch);
    const bad = batch.find((item) => poisoned.has(item));
    if (bad === undefined) {
      succeeded.push(...batch);
      return;
    }
    await bisectFailedRun(batch, new Error(`input ${bad} is out of range`), {
      rerun: runGroup,
      fail: async (single, error) => {
        failed.push({ items: single, message: error.message });
      },
    });
  };
  return { runs, succeeded, failed, runGroup };
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describe('halves', () => {
  it('keeps order and gives the first half the odd item', () => {
    expect(halves([1, 2, 3, 4])).toEqual([
      [1, 2],
      [3, 4],
    ]);
    expect(halves(['a', 'b', 'c'])).toEqual([['a', 'b'], ['c']]);
    expect(halves([7, 8])).toEqual([[7], [8]]);
  });

  it('refuses fewer than two items', () => {
    expect(() => halves([1])).toThrow(RangeError);
    expect(() => halves([])).toThrow(RangeError);
  });
});

describe('bisectFailedRun', () => {
  it('fails a lone request with the error of its own run', async () => {
    const sim = simulate(new Set([5]));
    await sim.runGroup([5]);
    expect(sim.runs).toEqual([[5]]);
    expect(sim.failed).toEqual([{ items: [5], message: 'input 5 is out of range' }]);
    expect(sim.succeeded).toEqual([]);
  });

  it('isolates one poison request of 16: the 15 others succeed, in 9 runs', async () => {
    const sim = simulate(new Set([11]));
    await sim.runGroup(range(16));
    expect(sim.failed).toEqual([{ items: [11], message: 'input 11 is out of range' }]);
    expect([...sim.succeeded].sort((a, b) => a - b)).toEqual(range(16).filter((i) => i !== 11));
    // depth first: the batch, then two halves per level down to the poison (1 + 2·log2(16))
    expect(sim.runs).toEqual([
      range(16),
      [0, 1, 2, 3, 4, 5, 6, 7],
      [8, 9, 10, 11, 12, 13, 14, 15],
      [8, 9, 10, 11],
      [8, 9],
      [10, 11],
      [10],
      [11],
      [12, 13, 14, 15],
    ]);
  });

  it('isolates several poison requests, each failing alone', async () => {
    const sim = simulate(new Set([0, 6, 7]));
    await sim.runGroup(range(9));
    expect(sim.failed.map((f) => f.items)).toEqual([[0], [6], [7]]);
    expect([...sim.succeeded].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 8]);
    for (const run of sim.runs) expect(run.length).toBeGreaterThan(0);
  });

  it('fails every request of a batch where all fail, each once, in 2n - 1 runs', async () => {
    const sim = simulate(new Set(range(5)));
    await sim.runGroup(range(5));
    expect(sim.failed.map((f) => f.items)).toEqual([[0], [1], [2], [3], [4]]);
    expect(sim.succeeded).toEqual([]);
    expect(sim.runs).toHaveLength(9);
  });

  it('runs the second half only after the first one settled', async () => {
    const order: string[] = [];
    await bisectFailedRun(['a', 'b'], new Error('boom'), {
      rerun: async (part) => {
        order.push(`start ${part.join('')}`);
        await new Promise((resolve) => setTimeout(resolve, 1));
        order.push(`end ${part.join('')}`);
      },
      fail: async () => {
        throw new Error('not called for a batch of two');
      },
    });
    expect(order).toEqual(['start a', 'end a', 'start b', 'end b']);
  });
});
