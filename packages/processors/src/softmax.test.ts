import { describe, expect, it } from 'vitest';
import { softmaxRows, topK } from './softmax.ts';

describe('softmaxRows', () => {
  it('turns each row into probabilities, stably for large values', () => {
    const out = softmaxRows([0, Math.log(3), 1000, 1000], 2);
    expect(out[0]).toBeCloseTo(0.25, 6);
    expect(out[1]).toBeCloseTo(0.75, 6);
    expect([out[2], out[3]]).toEqual([0.5, 0.5]);
  });

  it('refuses values that are not whole rows', () => {
    expect(() => softmaxRows([1, 2, 3], 2)).toThrow(/not whole rows of 2/);
  });
});

describe('topK', () => {
  it('ranks a row highest first with its labels, equal scores in index order', () => {
    expect(topK([0.1, 0.5, 0.1, 0.3], 3, ['0°', '180°', 'x', 'y'])).toEqual([
      { index: 1, label: '180°', score: 0.5 },
      { index: 3, label: 'y', score: 0.3 },
      { index: 0, label: '0°', score: 0.1 },
    ]);
    expect(topK([0.2, 0.8], 5)).toEqual([
      { index: 1, score: 0.8 },
      { index: 0, score: 0.2 },
    ]);
  });
});
