/** Tensors of every dtype, with the awkward values in them, shared by this package's tests. */
import { numberToFloat16Bits } from './float16.ts';
import { tensorDataBytes } from './tensor.ts';
import type { Tensor, TensorData, TensorMap } from './types.ts';

export function sampleTensors(): TensorMap {
  return {
    f32: {
      dtype: 'float32',
      shape: [2, 3],
      data: new Float32Array([0, -1.5, 3.25, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]),
    },
    f64: { dtype: 'float64', shape: [4], data: new Float64Array([1e300, 0.1, Number.NaN, -2.5e-310]) },
    f16: {
      dtype: 'float16',
      shape: [2, 3],
      data: new Uint16Array(
        [1, -2, 0.5, 65504, Number.POSITIVE_INFINITY, Number.NaN].map((x) => numberToFloat16Bits(x)),
      ),
    },
    i8: { dtype: 'int8', shape: [3], data: new Int8Array([-128, 127, 0]) },
    i16: { dtype: 'int16', shape: [3], data: new Int16Array([-32768, 32767, -1]) },
    i32: { dtype: 'int32', shape: [3], data: new Int32Array([-(2 ** 31), 2 ** 31 - 1, 7]) },
    i64: {
      dtype: 'int64',
      shape: [4],
      data: new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 2n ** 53n + 1n, -3n]),
    },
    u8: { dtype: 'uint8', shape: [3], data: new Uint8Array([0, 255, 17]) },
    u16: { dtype: 'uint16', shape: [2], data: new Uint16Array([0, 65535]) },
    u32: { dtype: 'uint32', shape: [2], data: new Uint32Array([0, 2 ** 32 - 1]) },
    u64: { dtype: 'uint64', shape: [3], data: new BigUint64Array([2n ** 64n - 1n, 2n ** 53n + 1n, 0n]) },
    flag: { dtype: 'bool', shape: [3], data: new Uint8Array([1, 0, 1]) },
    text: { dtype: 'string', shape: [3], data: ['a', '', 'ünï 😀'] },
    empty: { dtype: 'float32', shape: [0, 3], data: new Float32Array(0) },
    scalar: { dtype: 'float32', shape: [], data: new Float32Array([42]) },
  };
}

/** A tensor as a MessagePack body holds it: element bytes as `bin`, strings as an array. */
export function tensorToMsgpackWire(tensor: Tensor): Record<string, unknown> {
  return {
    dtype: tensor.dtype,
    shape: tensor.shape,
    data:
      tensor.dtype === 'string' ? tensor.data : tensorDataBytes(tensor.data as Exclude<TensorData, string[]>),
  };
}

export function mapValues<T, U>(map: Record<string, T>, f: (value: T) => U): Record<string, U> {
  return Object.fromEntries(Object.entries(map).map(([key, value]) => [key, f(value)]));
}

export function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}
