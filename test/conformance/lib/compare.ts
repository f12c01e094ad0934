// Comparing tensors: with a tolerance against ONNX's expected outputs, exactly against onnxruntime's.
import type { Tensor } from '@inferq/protocol';
import { float16BitsToNumber } from '@inferq/protocol';

/** numpy.allclose's test, |actual - expected| <= atol + rtol * |expected|, for one float dtype. */
export interface Tolerance {
  rtol: number;
  atol: number;
}

/**
 * The tolerance against ONNX's expected outputs: onnx's own backend test runner
 * (onnx/backend/test/runner, `assert_allclose(rtol=1e-3, atol=1e-7)`) for every float dtype.
 * Integers, bool and strings compare exactly; NaN must be NaN, infinities equal.
 */
export const TOLERANCE: Readonly<Record<'float16' | 'float32' | 'float64', Tolerance>> = {
  float16: { rtol: 1e-3, atol: 1e-7 },
  float32: { rtol: 1e-3, atol: 1e-7 },
  float64: { rtol: 1e-3, atol: 1e-7 },
};

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Element i as a number, bigint, boolean or string (float16 decoded). */
function element(tensor: Tensor, i: number): number | bigint | string {
  const value = (tensor.data as ArrayLike<number | bigint | string>)[i] as number | bigint | string;
  return tensor.dtype === 'float16' ? float16BitsToNumber(value as number) : value;
}

function isFloat(dtype: Tensor['dtype']): dtype is 'float16' | 'float32' | 'float64' {
  return dtype === 'float16' || dtype === 'float32' || dtype === 'float64';
}

function sameHeader(actual: Tensor, expected: Tensor): string | undefined {
  if (actual.dtype !== expected.dtype) return `dtype ${actual.dtype}, expected ${expected.dtype}`;
  const sameShape =
    actual.shape.length === expected.shape.length && actual.shape.every((d, i) => d === expected.shape[i]);
  if (!sameShape) return `shape ${shapeText(actual.shape)}, expected ${shapeText(expected.shape)}`;
  if (actual.data.length !== expected.data.length) {
    return `${actual.data.length} elements, expected ${expected.data.length}`;
  }
  return undefined;
}

function describeElement(i: number, actual: unknown, expected: unknown, extra = ''): string {
  return `element ${i}: ${String(actual)}, expected ${String(expected)}${extra}`;
}

/**
 * Undefined when `actual` matches `expected` within `tolerance` (floats; everything else exactly),
 * else what differs first and how many elements are off.
 */
export function describeMismatch(
  actual: Tensor,
  expected: Tensor,
  tolerance: Readonly<Record<'float16' | 'float32' | 'float64', Tolerance>> = TOLERANCE,
): string | undefined {
  const header = sameHeader(actual, expected);
  if (header !== undefined) return header;
  let first: string | undefined;
  let wrong = 0;
  const dtype = expected.dtype;
  for (let i = 0; i < expected.data.length; i++) {
    const a = element(actual, i);
    const e = element(expected, i);
    let ok: boolean;
    if (isFloat(dtype)) {
      const x = a as number;
      const y = e as number;
      const { rtol, atol } = tolerance[dtype];
      if (Number.isNaN(y) || Number.isNaN(x)) ok = Number.isNaN(x) && Number.isNaN(y);
      else if (!Number.isFinite(y) || !Number.isFinite(x)) ok = x === y;
      else ok = Math.abs(x - y) <= atol + rtol * Math.abs(y);
    } else {
      ok = a === e;
    }
    if (!ok) {
      wrong++;
      first ??= describeElement(i, a, e);
    }
  }
  return first === undefined ? undefined : `${first} (${wrong} of ${expected.data.length} elements differ)`;
}

/**
 * Undefined when the two tensors hold the same values: floats equal as numbers (so -0 equals 0, which
 * JSON cannot tell apart) or both NaN; everything else exactly. Else what differs first.
 */
export function describeDifference(actual: Tensor, expected: Tensor): string | undefined {
  const header = sameHeader(actual, expected);
  if (header !== undefined) return header;
  let first: string | undefined;
  let wrong = 0;
  for (let i = 0; i < expected.data.length; i++) {
    const a = element(actual, i);
    const e = element(expected, i);
    const same = a === e || (typeof a === 'number' && Number.isNaN(a) && Number.isNaN(e as number));
    if (!same) {
      wrong++;
      first ??= describeElement(i, a, e);
    }
  }
  return first === undefined ? undefined : `${first} (${wrong} of ${expected.data.length} elements differ)`;
}

/** Same dtype and shape (for outputs of random operators, whose values no two runs share). */
export function describeHeaderDifference(actual: Tensor, expected: Tensor): string | undefined {
  return sameHeader(actual, expected);
}
