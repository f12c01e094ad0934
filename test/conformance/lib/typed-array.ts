import type { DType, TensorData } from '@inferq/protocol';

/**
 * A fresh, aligned typed array of `dtype` over a copy of `bytes` (little-endian element bytes), as
 * the wire format and TensorProto's raw_data both carry them.
 */
export function typedArrayOf(
  dtype: Exclude<DType, 'string'>,
  bytes: Uint8Array,
): Exclude<TensorData, string[]> {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  const buffer = copy.buffer;
  switch (dtype) {
    case 'float32':
      return new Float32Array(buffer);
    case 'float64':
      return new Float64Array(buffer);
    case 'float16':
    case 'uint16':
      return new Uint16Array(buffer);
    case 'int8':
      return new Int8Array(buffer);
    case 'int16':
      return new Int16Array(buffer);
    case 'int32':
      return new Int32Array(buffer);
    case 'int64':
      return new BigInt64Array(buffer);
    case 'uint8':
    case 'bool':
      return new Uint8Array(buffer);
    case 'uint32':
      return new Uint32Array(buffer);
    case 'uint64':
      return new BigUint64Array(buffer);
  }
}
