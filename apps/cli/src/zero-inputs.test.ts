import { describe, expect, it } from 'vitest';
import { zeroInputs } from './zero-inputs.ts';

describe('zeroInputs', () => {
  it('fills fixed dims as declared, the dynamic batch axis with 1 and other dynamic dims with the given size', () => {
    const inputs = zeroInputs(
      [
        { name: 'x', dtype: 'float32', shape: [-1, 3, 48, -1] },
        { name: 'ids', dtype: 'int64', shape: [2] },
        { name: 'flag', dtype: 'bool', shape: [] },
        { name: 'text', dtype: 'string', shape: [-1, 2] },
      ],
      8,
    );
    expect(inputs.x?.shape).toEqual([1, 3, 48, 8]);
    expect(inputs.x?.data).toEqual(new Float32Array(3 * 48 * 8));
    expect(inputs.ids).toEqual({ dtype: 'int64', shape: [2], data: new BigInt64Array([0n, 0n]) });
    expect(inputs.flag).toEqual({ dtype: 'bool', shape: [], data: new Uint8Array([0]) });
    expect(inputs.text).toEqual({ dtype: 'string', shape: [1, 2], data: ['', ''] });
  });
});
