import type { Tensor } from '@inferq/protocol';
import { describe, expect, it } from 'vitest';
import { allocateData, concatAxis0, emptyGathered } from './concat.ts';

describe('concatAxis0', () => {
  it('concatenates typed arrays along axis 0, in order, empty items included', () => {
    const tensors: Tensor[] = [
      { dtype: 'float32', shape: [1, 2], data: new Float32Array([1, 2]) },
      { dtype: 'float32', shape: [0, 2], data: new Float32Array([]) },
      { dtype: 'float32', shape: [2, 2], data: new Float32Array([3, 4, 5, 6]) },
    ];
    expect(concatAxis0(tensors)).toEqual({
      dtype: 'float32',
      shape: [3, 2],
      data: new Float32Array([1, 2, 3, 4, 5, 6]),
    });
  });

  it('copies from views at an offset, and handles 64-bit integers, float16 bits and bools', () => {
    const buffer = new BigInt64Array([9n, 1n, 2n, 3n]);
    const view = new BigInt64Array(buffer.buffer, 8, 2);
    expect(
      concatAxis0([
        { dtype: 'int64', shape: [2], data: view },
        { dtype: 'int64', shape: [1], data: new BigInt64Array([-4n]) },
      ]),
    ).toEqual({ dtype: 'int64', shape: [3], data: new BigInt64Array([1n, 2n, -4n]) });
    expect(
      concatAxis0([
        { dtype: 'float16', shape: [1], data: new Uint16Array([0x3c00]) },
        { dtype: 'float16', shape: [1], data: new Uint16Array([0xc000]) },
      ]),
    ).toEqual({ dtype: 'float16', shape: [2], data: new Uint16Array([0x3c00, 0xc000]) });
    expect(
      concatAxis0([
        { dtype: 'bool', shape: [1, 1], data: new Uint8Array([1]) },
        { dtype: 'bool', shape: [1, 1], data: new Uint8Array([0]) },
      ]),
    ).toEqual({ dtype: 'bool', shape: [2, 1], data: new Uint8Array([1, 0]) });
  });

  it('concatenates strings', () => {
    expect(
      concatAxis0([
        { dtype: 'string', shape: [1], data: ['a'] },
        { dtype: 'string', shape: [2], data: ['b', 'c'] },
      ]),
    ).toEqual({ dtype: 'string', shape: [3], data: ['a', 'b', 'c'] });
  });

  it('returns a single tensor as is', () => {
    const tensor: Tensor = { dtype: 'uint8', shape: [2, 1], data: new Uint8Array([1, 2]) };
    expect(concatAxis0([tensor])).toBe(tensor);
  });

  it('refuses items that disagree, scalars and data that does not match the shape', () => {
    const a: Tensor = { dtype: 'float32', shape: [1, 2], data: new Float32Array(2) };
    expect(() => concatAxis0([a, { dtype: 'float64', shape: [1, 2], data: new Float64Array(2) }])).toThrow(
      'item 1 is float64, but item 0 is float32',
    );
    expect(() => concatAxis0([a, { dtype: 'float32', shape: [1, 3], data: new Float32Array(3) }])).toThrow(
      'item 1 has shape [1, 3], but item 0 has [1, 2]: all dimensions but the first must agree',
    );
    expect(() => concatAxis0([a, { dtype: 'float32', shape: [2], data: new Float32Array(2) }])).toThrow(
      'item 1 has shape [2], but item 0 has [1, 2]: all dimensions but the first must agree',
    );
    expect(() => concatAxis0([{ dtype: 'string', shape: [], data: ['x'] }])).toThrow(
      'item 0 is a scalar (shape []): gathering concatenates along axis 0, so items need rank ≥ 1',
    );
    expect(() => concatAxis0([a, { dtype: 'float32', shape: [2, 2], data: new Float32Array(2) }])).toThrow(
      'item 1 (shape [2, 2]): data holds 2 elements, the shape needs 4',
    );
    expect(() => concatAxis0([])).toThrow('nothing to concatenate');
  });
});

describe('emptyGathered', () => {
  it('takes dtype and trailing dims from the declared spec, a dynamic one being 0', () => {
    expect(emptyGathered({ name: 'box', dtype: 'float32', shape: [1, 4] })).toEqual({
      dtype: 'float32',
      shape: [0, 4],
      data: new Float32Array(0),
    });
    expect(emptyGathered({ name: 'image', dtype: 'uint8', shape: [-1, -1, 3] })).toEqual({
      dtype: 'uint8',
      shape: [0, 0, 3],
      data: new Uint8Array(0),
    });
    expect(emptyGathered({ name: 'text', dtype: 'string', shape: [] })).toEqual({
      dtype: 'string',
      shape: [0],
      data: [],
    });
  });

  it('allocates the array each dtype is carried in', () => {
    expect(allocateData('uint64', 1)).toEqual(new BigUint64Array(1));
    expect(allocateData('string', 2)).toEqual(['', '']);
  });
});
