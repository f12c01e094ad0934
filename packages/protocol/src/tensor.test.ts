import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { float16BitsToNumber, numberToFloat16Bits } from './float16.ts';
import { decodeBase64Strict, elementCount, tensorDataBytes, tensorDataFromBytes } from './tensor.ts';

describe('float16', () => {
  test('every bit pattern survives bits -> number -> bits (NaNs become the quiet NaN)', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = float16BitsToNumber(bits);
      const isNaNPattern = (bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0;
      expect(numberToFloat16Bits(value)).toBe(isNaNPattern ? 0x7e00 : bits);
    }
  });

  test('known values', () => {
    expect(float16BitsToNumber(0x3c00)).toBe(1);
    expect(float16BitsToNumber(0xc000)).toBe(-2);
    expect(float16BitsToNumber(0x7bff)).toBe(65504);
    expect(float16BitsToNumber(0x0001)).toBe(2 ** -24);
    expect(float16BitsToNumber(0x0400)).toBe(2 ** -14);
    expect(float16BitsToNumber(0xfc00)).toBe(Number.NEGATIVE_INFINITY);
    expect(Object.is(float16BitsToNumber(0x8000), -0)).toBe(true);
  });

  test('rounds to nearest, ties to even, and overflows to infinity from 65520', () => {
    expect(numberToFloat16Bits(0.1)).toBe(0x2e66);
    expect(numberToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie -> even (1.0)
    expect(numberToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie -> even (1 + 2^-9)
    expect(numberToFloat16Bits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // just above the tie
    expect(numberToFloat16Bits(65519.99)).toBe(0x7bff);
    expect(numberToFloat16Bits(65520)).toBe(0x7c00);
    expect(numberToFloat16Bits(-1e10)).toBe(0xfc00);
    expect(numberToFloat16Bits(2 ** -25)).toBe(0x0000); // tie between 0 and the smallest subnormal -> 0
    expect(numberToFloat16Bits(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 subnormal steps -> 2
    expect(numberToFloat16Bits(2 ** -14 - 2 ** -26)).toBe(0x0400); // rounds up into the normals
    expect(numberToFloat16Bits(-0)).toBe(0x8000);
  });
});

describe('tensorDataFromBytes', () => {
  test('a view over the same memory when aligned', () => {
    const buffer = new ArrayBuffer(32);
    const bytes = new Uint8Array(buffer, 8, 16);
    new Float32Array(buffer, 8, 4).set([1, 2, 3, 4]);
    const data = tensorDataFromBytes('float32', bytes);
    expect(data).toBeInstanceOf(Float32Array);
    expect(data.buffer).toBe(buffer);
    expect(data.byteOffset).toBe(8);
    expect(Array.from(data as Float32Array)).toEqual([1, 2, 3, 4]);
  });

  test('a copy with the same values when misaligned', () => {
    const buffer = new ArrayBuffer(40);
    const bytes = new Uint8Array(buffer, 3, 16);
    bytes.set(new Uint8Array(new BigInt64Array([-1n, 2n ** 62n]).buffer));
    const data = tensorDataFromBytes('int64', bytes);
    expect(data.buffer).not.toBe(buffer);
    expect(Array.from(data as BigInt64Array)).toEqual([-1n, 2n ** 62n]);
  });

  test('tensorDataBytes is the inverse view', () => {
    const data = new Int16Array([1, -2]);
    const bytes = tensorDataBytes(data);
    expect(bytes.buffer).toBe(data.buffer);
    expect(Array.from(bytes)).toEqual([1, 0, 0xfe, 0xff]);
  });

  test('refuses a byte count that is not a whole number of elements', () => {
    expect(() => tensorDataFromBytes('float64', new Uint8Array(12))).toThrow(RangeError);
  });
});

test('elementCount: product, 0 for any zero dimension, undefined beyond 2^53', () => {
  expect(elementCount([])).toBe(1);
  expect(elementCount([2, 3, 4])).toBe(24);
  expect(elementCount([2 ** 40, 0, 2 ** 40])).toBe(0);
  expect(elementCount([2 ** 30, 2 ** 30])).toBeUndefined();
});

test('decodeBase64Strict refuses characters Buffer.from would skip', () => {
  expect(Array.from(decodeBase64Strict('AQID') ?? [])).toEqual([1, 2, 3]);
  expect(Array.from(decodeBase64Strict('AQI=') ?? [])).toEqual([1, 2]);
  expect(Array.from(decodeBase64Strict('AQI') ?? [])).toEqual([1, 2]);
  expect(Array.from(decodeBase64Strict('') ?? [0])).toEqual([]);
  expect(decodeBase64Strict('AQ*D')).toBeUndefined();
  expect(decodeBase64Strict('A')).toBeUndefined();
  expect(decodeBase64Strict('AQID\n')).toBeUndefined();
});

test('decodeBase64Strict decodes a body-sized string without overflowing the stack', () => {
  // 4 MB of bytes: the backtracking pattern this replaced threw "Maximum call stack size exceeded".
  const bytes = Buffer.alloc(4 * 1024 * 1024, 0xa7);
  expect(Buffer.from(decodeBase64Strict(bytes.toString('base64')) ?? []).equals(bytes)).toBe(true);
  expect(decodeBase64Strict(`${bytes.toString('base64')}*`)).toBeUndefined();
});

test('decodeBase64Strict accepts exactly what the strict base64 grammar accepts', () => {
  // The grammar as a pattern, safe on short strings: groups of 4, then an optional padded or bare tail.
  const grammar = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;
  const text = fc.string({ unit: fc.constantFrom(...'AQZaz09+/=-_ *\n\u00e9'), maxLength: 14 });
  fc.assert(
    fc.property(text, (s) => {
      expect(decodeBase64Strict(s) !== undefined).toBe(grammar.test(s));
    }),
    { numRuns: 3000, seed: 11 },
  );
});
