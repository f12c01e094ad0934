/**
 * IEEE 754 binary16 <-> JavaScript number. Node 20 has no Float16Array, so float16 tensors are
 * carried as their raw Uint16 bits and converted only at the JSON boundary.
 */

const TWO_POW_MINUS_14 = 2 ** -14;
const TWO_POW_MINUS_24 = 2 ** -24;
/** Halfway between the largest finite half (65504) and the next step (65536): rounds to infinity. */
const HALF_OVERFLOW = 65520;
const HALF_QUIET_NAN = 0x7e00;

export function float16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * TWO_POW_MINUS_24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** Rounds to the nearest half, ties to even, as a float32 -> float16 cast does. */
export function numberToFloat16Bits(value: number): number {
  if (Number.isNaN(value)) return HALF_QUIET_NAN;
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const magnitude = Math.abs(value);
  if (magnitude >= HALF_OVERFLOW) return sign | 0x7c00;
  if (magnitude < TWO_POW_MINUS_14) {
    // Subnormal: magnitude = m * 2^-24. A rounded m of 1024 is exactly the smallest normal's bits.
    return sign | roundHalfToEven(magnitude / TWO_POW_MINUS_24);
  }
  let exponent = Math.floor(Math.log2(magnitude));
  // log2 can be off by one next to powers of two; scaling by powers of two is exact, so fix it here.
  if (2 ** exponent > magnitude) exponent -= 1;
  else if (2 ** (exponent + 1) <= magnitude) exponent += 1;
  let fraction = roundHalfToEven((magnitude / 2 ** exponent - 1) * 1024);
  if (fraction === 1024) {
    fraction = 0;
    exponent += 1;
  }
  return sign | ((exponent + 15) << 10) | fraction;
}

function roundHalfToEven(x: number): number {
  const floor = Math.floor(x);
  const rest = x - floor;
  if (rest > 0.5 || (rest === 0.5 && floor % 2 === 1)) return floor + 1;
  return floor;
}
