import type { DType, Tensor, TensorData, TensorMap } from '@inferq/protocol';
import { describe, expect, it } from 'vitest';
import {
  batchGroupKey,
  batchRows,
  cropOutputs,
  isExclusivelyOwned,
  splitOutputs,
  stackInputs,
} from './stacking.ts';

/** Three rows of two elements per dtype, extremes included, as the typed array each dtype travels in. */
const SAMPLES: Record<DType, () => TensorData> = {
  float32: () => new Float32Array([1.5, -2.25, 3.4028234663852886e38, -0, 1e-45, 7]),
  float64: () => new Float64Array([0.1, -0.2, Number.MAX_VALUE, Number.MIN_VALUE, -1e308, 42]),
  float16: () => new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00]),
  int8: () => new Int8Array([-128, 127, 0, -1, 1, 5]),
  int16: () => new Int16Array([-32768, 32767, 0, -1, 1, 5]),
  int32: () => new Int32Array([-2147483648, 2147483647, 0, -1, 1, 5]),
  int64: () => new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n, 1n, 2n ** 53n + 1n]),
  uint8: () => new Uint8Array([0, 255, 1, 2, 3, 4]),
  uint16: () => new Uint16Array([0, 65535, 1, 2, 3, 4]),
  uint32: () => new Uint32Array([0, 4294967295, 1, 2, 3, 4]),
  uint64: () => new BigUint64Array([0n, 2n ** 64n - 1n, 1n, 2n, 3n, 2n ** 53n + 1n]),
  bool: () => new Uint8Array([1, 0, 0, 1, 1, 1]),
  string: () => ['a', 'bé', '', '日本', 'x'.repeat(100), 'z'],
};

const DTYPE_LIST = Object.keys(SAMPLES) as DType[];

function rowsOf(data: TensorData, start: number, end: number): TensorData {
  return Array.isArray(data) ? data.slice(start * 2, end * 2) : data.slice(start * 2, end * 2);
}

describe('stackInputs / splitOutputs', () => {
  it.each(DTYPE_LIST)('stacks and splits %s exactly, requests carrying one or more rows', (dtype) => {
    const all = SAMPLES[dtype]();
    const first: Tensor = { dtype, shape: [1, 2], data: rowsOf(all, 0, 1) };
    const second: Tensor = { dtype, shape: [2, 2], data: rowsOf(all, 1, 3) };

    const stacked = stackInputs([{ x: first }, { x: second }], ['x']);
    expect(stacked.x!.dtype).toBe(dtype);
    expect(stacked.x!.shape).toEqual([3, 2]);
    expect(stacked.x!.data).toEqual(all);
    expect(stacked.x!.data.constructor).toBe(all.constructor);
    expect(isExclusivelyOwned(stacked.x!.data)).toBe(!Array.isArray(all));

    const [one, two] = splitOutputs({ y: stacked.x! }, [1, 2]);
    expect(one!.y).toEqual({ dtype, shape: [1, 2], data: rowsOf(all, 0, 1) });
    expect(two!.y).toEqual({ dtype, shape: [2, 2], data: rowsOf(all, 1, 3) });
    if (!Array.isArray(all)) {
      // views over the batch output, not copies
      expect((one!.y!.data as Uint8Array).buffer).toBe((stacked.x!.data as Uint8Array).buffer);
      expect((two!.y!.data as Uint8Array).byteOffset).toBe(2 * all.BYTES_PER_ELEMENT);
    }
  });

  it('stacks several inputs, each into its own array, and keeps only the names asked for', () => {
    const request = (a: number[], b: number[]): TensorMap => ({
      a: { dtype: 'float32', shape: [1, 3], data: new Float32Array(a) },
      b: { dtype: 'int64', shape: [1, 1], data: new BigInt64Array(b.map(BigInt)) },
      ignored: { dtype: 'uint8', shape: [1], data: new Uint8Array([9]) },
    });
    const stacked = stackInputs([request([1, 2, 3], [10]), request([4, 5, 6], [20])], ['a', 'b']);
    expect(Object.keys(stacked)).toEqual(['a', 'b']);
    expect(stacked.a).toEqual({
      dtype: 'float32',
      shape: [2, 3],
      data: new Float32Array([1, 2, 3, 4, 5, 6]),
    });
    expect(stacked.b).toEqual({ dtype: 'int64', shape: [2, 1], data: new BigInt64Array([10n, 20n]) });
  });

  it('reads request views at any offset of a shared payload buffer without touching it', () => {
    const payload = new ArrayBuffer(64);
    const view = new Float32Array(payload, 8, 4);
    view.set([1, 2, 3, 4]);
    const stacked = stackInputs([{ x: { dtype: 'float32', shape: [1, 4], data: view } }], ['x']);
    expect(stacked.x!.data).toEqual(new Float32Array([1, 2, 3, 4]));
    expect((stacked.x!.data as Float32Array).buffer).not.toBe(payload);
    expect(isExclusivelyOwned(view)).toBe(false);
  });

  it('splits a batch of a higher-rank output and a zero-row request', () => {
    const data = new Int32Array(Array.from({ length: 24 }, (_, i) => i));
    const parts = splitOutputs({ y: { dtype: 'int32', shape: [4, 2, 3], data } }, [1, 0, 3]);
    expect(parts.map((part) => part.y!.shape)).toEqual([
      [1, 2, 3],
      [0, 2, 3],
      [3, 2, 3],
    ]);
    expect(Array.from(parts[2]!.y!.data as Int32Array)).toEqual(Array.from({ length: 18 }, (_, i) => i + 6));
    expect(parts[1]!.y!.data.length).toBe(0);
  });

  it('pads the configured axis to the largest in the batch with the pad value', () => {
    // [rows, channels=2, width]; widths 2 and 3, padded to 3 with -1
    const narrow: Tensor = { dtype: 'float32', shape: [1, 2, 2], data: new Float32Array([1, 2, 3, 4]) };
    const wide: Tensor = {
      dtype: 'float32',
      shape: [2, 2, 3],
      data: new Float32Array([5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
    };
    const stacked = stackInputs([{ x: narrow }, { x: wide }], ['x'], { x: { axis: 2, value: -1 } });
    expect(stacked.x!.shape).toEqual([3, 2, 3]);
    expect(Array.from(stacked.x!.data as Float32Array)).toEqual([
      1, 2, -1, 3, 4, -1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
    ]);
  });

  it('pads a middle axis, keeping the inner block together', () => {
    // [rows, height, 2]; heights 1 and 2
    const short: Tensor = { dtype: 'int64', shape: [1, 1, 2], data: new BigInt64Array([1n, 2n]) };
    const tall: Tensor = { dtype: 'int64', shape: [1, 2, 2], data: new BigInt64Array([3n, 4n, 5n, 6n]) };
    const stacked = stackInputs([{ x: short }, { x: tall }], ['x'], { x: { axis: 1, value: 7 } });
    expect(stacked.x).toEqual({
      dtype: 'int64',
      shape: [2, 2, 2],
      data: new BigInt64Array([1n, 2n, 7n, 7n, 3n, 4n, 5n, 6n]),
    });
  });

  it.each([
    ['float16', 1, 0x3c00],
    ['float16', -2, 0xc000],
    ['float16', 65504, 0x7bff],
    ['float16', 1e6, 0x7c00],
    ['float16', 1e-7, 0x0002],
    ['float16', 1 + 2 ** -11, 0x3c00],
    ['float16', 1 + 3 * 2 ** -11, 0x3c02],
    ['bool', 5, 1],
    ['uint8', 3, 3],
  ] as const)('pads %s with %d as element %d', (dtype, value, element) => {
    const make = (width: number): Tensor => ({ dtype, shape: [1, width], data: new Uint16Array(width) });
    const typed = (tensor: Tensor): Tensor =>
      dtype === 'float16' ? tensor : { ...tensor, data: new Uint8Array(tensor.data.length) };
    const stacked = stackInputs([{ x: typed(make(1)) }, { x: typed(make(2)) }], ['x'], {
      x: { axis: 1, value },
    });
    expect(Array.from(stacked.x!.data as Uint8Array)).toEqual([0, element, 0, 0]);
  });

  it('refuses what cannot be stacked or split', () => {
    const f32 = (shape: number[]): Tensor => ({
      dtype: 'float32',
      shape,
      data: new Float32Array(shape.reduce((a, b) => a * b, 1)),
    });
    expect(() => stackInputs([], ['x'])).toThrow(/empty batch/);
    expect(() => stackInputs([{ x: f32([1, 2]) }, {}], ['x'])).toThrow(
      "request 1 of the batch lacks input 'x'",
    );
    expect(() => stackInputs([{ x: f32([1, 2]) }, { x: f32([1, 3]) }], ['x'])).toThrow(
      "input 'x': cannot stack float32[1, 3] with float32[1, 2]",
    );
    expect(() =>
      stackInputs(
        [{ x: f32([1, 2]) }, { x: { dtype: 'float64', shape: [1, 2], data: new Float64Array(2) } }],
        ['x'],
      ),
    ).toThrow(/cannot stack float64/);
    expect(() => stackInputs([{ x: f32([]) }], ['x'])).toThrow(/scalar/);
    expect(() =>
      stackInputs([{ x: { dtype: 'float32', shape: [2, 2], data: new Float32Array(3) } }], ['x']),
    ).toThrow(/holds 3 elements/);
    expect(() => splitOutputs({ y: f32([2, 2]) }, [1, 2])).toThrow(/not the batch of 3 rows/);
    expect(() => splitOutputs({ y: f32([]) }, [1])).toThrow(/not the batch/);
  });
});

describe('batchGroupKey', () => {
  const names = ['x', 'len'];

  it('ignores the batch axis', () => {
    expect(batchGroupKey({ rows: 1, dims: [[3, 48, 100], []] }, names)).toBe(
      batchGroupKey({ rows: 4, dims: [[3, 48, 100], []] }, names),
    );
  });

  it('separates different non-batch dims and ranks, on any input', () => {
    const keys = new Set(
      [
        [[3, 48, 100], []],
        [[3, 48, 120], []],
        [[3, 4800], []],
        [[3, 48, 100], [2]],
        [[3, 48], [100]],
      ].map((dims) => batchGroupKey({ rows: 1, dims }, names)),
    );
    expect(keys.size).toBe(5);
  });

  it('lets a padded axis differ, and only that axis', () => {
    const pad = { x: { axis: 3, value: 0 } };
    expect(batchGroupKey({ rows: 1, dims: [[3, 48, 100], []] }, names, pad)).toBe(
      batchGroupKey({ rows: 2, dims: [[3, 48, 320], []] }, names, pad),
    );
    expect(batchGroupKey({ rows: 1, dims: [[3, 48, 100], []] }, names, pad)).not.toBe(
      batchGroupKey({ rows: 1, dims: [[3, 32, 100], []] }, names, pad),
    );
  });
});

describe('cropOutputs', () => {
  const pad = { x: { axis: 2, value: 0 } };
  /** An output as wide as x's padded axis / 2, rounded down (a stride-2 model). */
  const crop = { seq: [{ axis: 2, input: 'x', multiplier: 1, offset: 0, divisor: 2, min: 0 }], score: [] };
  const x = (width: number): Tensor => ({
    dtype: 'float32',
    shape: [1, 1, width],
    data: new Float32Array(width),
  });
  /** [rows, 2, width] holding 0, 1, 2, ... */
  const seq = <T extends DType>(dtype: T, rows: number, width: number): Tensor => {
    const count = rows * 2 * width;
    const values = Array.from({ length: count }, (_, i) => i);
    const data =
      dtype === 'string'
        ? values.map(String)
        : dtype === 'int64'
          ? BigInt64Array.from(values.map(BigInt))
          : Float32Array.from(values);
    return { dtype, shape: [rows, 2, width], data };
  };

  it.each(['float32', 'int64', 'string'] as const)(
    'cuts each rule axis back to the size its rule gives for the request (%s)',
    (dtype) => {
      const score: Tensor = { dtype: 'float32', shape: [2, 1], data: new Float32Array(2) };
      const outputs = { seq: seq(dtype, 2, 4), score };
      const cropped = cropOutputs(outputs, { x: x(5) }, { x: 8 }, pad, crop);
      const kept = [0, 1, 4, 5, 8, 9, 12, 13];
      expect(cropped.seq).toEqual({
        dtype,
        shape: [2, 2, 2],
        data:
          dtype === 'string'
            ? kept.map(String)
            : dtype === 'int64'
              ? BigInt64Array.from(kept.map(BigInt))
              : Float32Array.from(kept),
      });
      expect(cropped.score).toBe(outputs.score);
    },
  );

  it('crops several axes and leaves an output of the padded size as it is', () => {
    const twoAxes = {
      seq: [
        { axis: 1, input: 'x', multiplier: 1, offset: 0, divisor: 4, min: 1 },
        { axis: 2, input: 'x', multiplier: 1, offset: 0, divisor: 2, min: 0 },
      ],
    };
    const outputs = { seq: seq('float32', 1, 4) };
    expect(cropOutputs(outputs, { x: x(2) }, { x: 8 }, pad, twoAxes).seq).toEqual({
      dtype: 'float32',
      shape: [1, 1, 1],
      data: Float32Array.from([0]),
    });
    expect(cropOutputs(outputs, { x: x(8) }, { x: 8 }, pad, twoAxes).seq).toBe(outputs.seq);
  });

  it('refuses a rule that does not give the size the model produced at the padded size', () => {
    expect(() => cropOutputs({ seq: seq('float32', 1, 3) }, { x: x(5) }, { x: 8 }, pad, crop)).toThrow(
      /has 3 on axis 2 for 'x' padded to 8, but its crop rule gives 4/,
    );
  });
});

describe('batchRows', () => {
  it('is the shared first axis of the inputs', () => {
    const f32 = (rows: number): Tensor => ({
      dtype: 'float32',
      shape: [rows, 2],
      data: new Float32Array(rows * 2),
    });
    expect(batchRows({ a: f32(3), b: f32(3) })).toBe(3);
    expect(() => batchRows({ a: f32(3), b: f32(2) })).toThrow(/disagree/);
    expect(() => batchRows({})).toThrow(/without inputs/);
    expect(() => batchRows({ a: { dtype: 'float32', shape: [], data: new Float32Array(1) } })).toThrow(
      /scalar/,
    );
  });
});
