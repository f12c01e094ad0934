import type { DType, NumericDType, TensorData } from '@inferq/protocol';

type NumericData = Exclude<TensorData, string[]>;

interface NumericArrayConstructor {
  new (length: number): NumericData;
}

/** The typed array that carries each numeric dtype (float16 as raw bits, bool as one byte). */
export const TYPED_ARRAY_OF: Readonly<Record<NumericDType, NumericArrayConstructor>> = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  uint8: Uint8Array,
  uint16: Uint16Array,
  uint32: Uint32Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
};

export function isNumericData(data: TensorData): data is NumericData {
  return !Array.isArray(data);
}

export function allocate(dtype: DType, length: number): TensorData {
  if (dtype === 'string') return new Array<string>(length).fill('');
  return new TYPED_ARRAY_OF[dtype](length);
}

/** Product of the dims (1 for a scalar). */
export function elementsOf(shape: readonly number[]): number {
  let count = 1;
  for (const dim of shape) count *= dim;
  return count;
}

const float32Scratch = new Float32Array(1);
const float32Bits = new Uint32Array(float32Scratch.buffer);

/**
 * float32 -> binary16 bits, rounding to nearest even; only used for padding values, which go through
 * float32 first exactly as a cast in the model would.
 */
function float16BitsOf(value: number): number {
  float32Scratch[0] = value;
  const bits = float32Bits[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa === 0 ? 0 : 0x200);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -11) return sign;
    const shift = 14 - halfExponent;
    const full = mantissa | 0x800000;
    const truncated = full >>> shift;
    const rest = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    return sign | (rest > halfway || (rest === halfway && truncated & 1) ? truncated + 1 : truncated);
  }
  const truncated = (halfExponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to infinity).
  return sign | (rest > 0x1000 || (rest === 0x1000 && truncated & 1) ? truncated + 1 : truncated);
}

/** The element value to fill a typed array of `dtype` with, for a numeric `value`. */
export function elementValue(dtype: NumericDType, value: number): number | bigint {
  switch (dtype) {
    case 'int64':
    case 'uint64':
      return BigInt(Math.trunc(value));
    case 'float16':
      return float16BitsOf(value);
    case 'bool':
      return value === 0 ? 0 : 1;
    default:
      return value;
  }
}
