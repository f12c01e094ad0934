import { describe, expect, it } from 'vitest';
import { batchShapeOf, formatBatchShape, parseBatchShape } from './batch-shape.ts';
import { UnprocessableError } from './errors.ts';
import type { ModelSignature, Tensor } from './types.ts';

const signature: ModelSignature = {
  inputs: [
    { name: 'image', dtype: 'float32', shape: [-1, 3, 48, -1] },
    { name: 'length', dtype: 'int64', shape: [-1] },
  ],
  outputs: [{ name: 'y', dtype: 'float32', shape: [-1, -1] }],
};

const tensor = (shape: number[]): Tensor => ({ dtype: 'float32', shape, data: new Float32Array(0) });

describe('batch shape', () => {
  it('holds the shared rows and every input dims after the first, in signature order', () => {
    const shape = batchShapeOf({ length: tensor([2]), image: tensor([2, 3, 48, 160]) }, signature);
    expect(shape).toEqual({ rows: 2, dims: [[3, 48, 160], []] });
    expect(formatBatchShape(shape)).toBe('2;3,48,160;');
    expect(parseBatchShape('2;3,48,160;', 2)).toEqual(shape);
  });

  it('refuses inputs that disagree on the batch axis with a 422', () => {
    const run = (): unknown =>
      batchShapeOf({ image: tensor([2, 3, 48, 160]), length: tensor([3]) }, signature);
    expect(run).toThrow(UnprocessableError);
    expect(run).toThrow(/'length' has 3 rows, the inputs before it 2/);
  });

  it.each(['', '2', '2;3,48,160', '2;3,48,160;;', 'x;3;', '2;3,-1;', '2;3,4.5;', '2;3,,4;'])(
    'parses %j as no batch shape of a two-input model',
    (text) => {
      expect(parseBatchShape(text, 2)).toBeUndefined();
    },
  );
});
