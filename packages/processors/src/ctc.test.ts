import { describe, expect, it } from 'vitest';
import { ctcGreedyDecode, ctcLabels } from './ctc.ts';

describe('ctcLabels', () => {
  it('puts the blank first and the space last, one label per dictionary line', () => {
    expect(ctcLabels('a\nb\r\nc\n', { space: true })).toEqual(['', 'a', 'b', 'c', ' ']);
    expect(ctcLabels('a\nb', { space: false })).toEqual(['', 'a', 'b']);
  });
});

describe('ctcGreedyDecode', () => {
  const labels = ['', 'h', 'i', ' '];
  /** One row per step, the winner at `label` with probability `p`, the rest sharing what is left. */
  function steps(...winners: [label: number, p: number][]): Float32Array {
    const out = new Float32Array(winners.length * labels.length);
    winners.forEach(([label, p], step) => {
      for (let i = 0; i < labels.length; i++) out[step * labels.length + i] = i === label ? p : (1 - p) / 3;
    });
    return out;
  }

  it('collapses repeats, drops blanks, and keeps a repeat that a blank separates', () => {
    const decoded = ctcGreedyDecode(
      steps([1, 0.9], [1, 0.8], [0, 0.9], [2, 0.7], [0, 0.9], [2, 0.5], [3, 0.6], [1, 0.6]),
      8,
      labels,
    );
    expect(decoded.text).toBe('hii h');
    // The kept labels' probabilities: 0.9 (the first h of the run), 0.7, 0.5, 0.6, 0.6.
    expect(decoded.confidence).toBeCloseTo((0.9 + 0.7 + 0.5 + 0.6 + 0.6) / 5, 6);
  });

  it('answers an empty line with confidence 0 when every step is blank', () => {
    expect(ctcGreedyDecode(steps([0, 0.9], [0, 0.8]), 2, labels)).toEqual({ text: '', confidence: 0 });
  });

  it('refuses data that is not whole steps of the labels', () => {
    expect(() => ctcGreedyDecode(new Float32Array(7), 2, labels)).toThrow(/not 2 steps of 4 labels/);
  });
});
