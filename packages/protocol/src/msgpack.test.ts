import { Packr } from 'msgpackr';
import { describe, expect, test } from 'vitest';
import { findMessagePackProblem, packStandard, unpackStandard } from './msgpack.ts';

describe('packStandard', () => {
  test('writes maps, bin and plain numbers: no records, no typed-array extensions', () => {
    const bytes = packStandard({ a: new Uint8Array([1, 2]), b: [1.5, -1, 'x', true, null] });
    expect(Array.from(bytes)).toEqual([
      0x82, // fixmap 2
      0xa1,
      0x61, // "a"
      0xc4,
      0x02,
      0x01,
      0x02, // bin8 [1, 2]
      0xa1,
      0x62, // "b"
      0x95, // fixarray 5
      0xcb,
      0x3f,
      0xf8,
      0,
      0,
      0,
      0,
      0,
      0, // float64 1.5
      0xff, // -1
      0xa1,
      0x78, // "x"
      0xc3, // true
      0xc0, // nil
    ]);
  });

  test('the same object packed twice gives the same bytes (no shared-structure state)', () => {
    const value = { id: 'x', status: 'queued', n: 1 };
    expect(Array.from(packStandard(value))).toEqual(Array.from(packStandard(value)));
  });
});

describe('unpackStandard', () => {
  test('decodes maps to objects and bin to a view over the input', () => {
    const bytes = packStandard({ data: new Uint8Array([9, 8, 7]), n: 2n ** 60n, small: 5n });
    const value = unpackStandard(bytes) as { data: Uint8Array; n: unknown; small: unknown };
    expect(value.data).toBeInstanceOf(Uint8Array);
    expect(Array.from(value.data)).toEqual([9, 8, 7]);
    expect(value.data.buffer).toBe(bytes.buffer);
    expect(value.n).toBe(2n ** 60n); // beyond 2^53: a bigint, never rounded
    expect(value.small).toBe(5);
  });

  test('refuses what msgpackr would otherwise accept: records, typed-array and undefined extensions', () => {
    const records = new Packr({ useRecords: true }).pack([{ a: 1 }, { a: 2 }]);
    const typedArray = new Packr({ moreTypes: true }).pack(new Float32Array([1]));
    const undefinedValue = new Packr({ useRecords: false }).pack({ a: undefined });
    for (const bytes of [records, typedArray, undefinedValue]) {
      expect(() => unpackStandard(bytes)).toThrow(/extension type .* not accepted/);
    }
  });
});

describe('findMessagePackProblem', () => {
  const cases: [string, number[], RegExp | undefined][] = [
    ['a positive fixint', [0x05], undefined],
    ['an empty map', [0x80], undefined],
    ['nested containers', [0x81, 0xa1, 0x61, 0x92, 0x90, 0x80], undefined],
    ['str8 key and bin16 value', [0x81, 0xd9, 0x01, 0x61, 0xc5, 0x00, 0x01, 0xff], undefined],
    ['nothing', [], /empty MessagePack input/],
    ['the never-used byte', [0xc1], /0xc1/],
    ['fixext1', [0xd4, 0x01, 0x00], /extension type \(0xd4\) at byte 0/],
    ['ext8', [0x91, 0xc7, 0x01, 0x05, 0x00], /extension type \(0xc7\) at byte 1/],
    ['truncated float64', [0xcb, 0, 0, 0], /the value at byte 0 needs 9 bytes, only 4 remain/],
    ['truncated bin32 header', [0xc6, 0, 0], /the value at byte 0 needs 5 bytes, only 3 remain/],
    ['truncated string', [0xa3, 0x61], /the value at byte 0 needs 4 bytes, only 2 remain/],
    ['an array missing items', [0x93, 0x01], /truncated MessagePack/],
    ['an array32 claiming 4 billion items', [0xdd, 0xff, 0xff, 0xff, 0xff, 0x01], /truncated MessagePack/],
    ['trailing bytes', [0x01, 0x02], /trailing bytes after the MessagePack value: 1 bytes from byte 1/],
    ['an integer map key', [0x81, 0x01, 0x02], /map key at byte 1 is not a string/],
    ['a bin map key', [0x81, 0xc4, 0x00, 0x02], /map key at byte 1 is not a string/],
    ['nesting beyond 32 levels', [...Array(33).fill(0x91), 0x01], /nested deeper than 32 levels/],
  ];

  test.each(cases)('%s', (_name, bytes, problem) => {
    const found = findMessagePackProblem(new Uint8Array(bytes));
    if (problem === undefined) expect(found).toBeUndefined();
    else expect(found).toMatch(problem);
  });

  test('nesting of exactly 32 levels is fine', () => {
    expect(findMessagePackProblem(new Uint8Array([...Array(32).fill(0x91), 0x01]))).toBeUndefined();
  });
});

describe('strings of client input', () => {
  const limits = { maxValues: 100, maxContainers: 10 };
  test.each([
    ['a stray continuation byte', [0xa2, 0x61, 0x80]],
    ['a cut sequence', [0xa2, 0xc3, 0x28]],
    ['an encoded surrogate', [0xa3, 0xed, 0xa0, 0x80]],
    ['0xff', [0xa1, 0xff]],
  ])('refuses %s as not UTF-8 (msgpackr would make it U+FFFD)', (_name, bytes) => {
    expect(findMessagePackProblem(Uint8Array.from(bytes), limits)).toBe(
      'MessagePack string at byte 0 is not valid UTF-8',
    );
  });

  test('takes valid UTF-8 of any length, and our own values unchecked', () => {
    const long = packStandard(`${'é'.repeat(100)}😀`);
    expect(findMessagePackProblem(long, limits)).toBeUndefined();
    expect(unpackStandard(long, limits)).toBe(`${'é'.repeat(100)}😀`);
    expect(findMessagePackProblem(Uint8Array.from([0xa1, 0xff]))).toBeUndefined();
  });
});
