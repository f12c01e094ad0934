import { Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { packForLua } from './lua-args.ts';

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

describe('packForLua', () => {
  it('writes nested arrays of strings as standard MessagePack', () => {
    const value = [
      ['a', 'bc'],
      [],
      ['é', 'x'.repeat(31), 'y'.repeat(32), 'z'.repeat(300), 'w'.repeat(70_000)],
    ];
    expect(unpackr.unpack(packForLua(value))).toEqual(value);
  });

  it('writes binary values as strings holding their bytes (Redis cmsgpack knows no bin type)', () => {
    expect(packForLua([new Uint8Array([0xff, 0x00, 0x80])]).toString('hex')).toBe('91a3ff0080');
    expect(packForLua(new Uint8Array(32)).subarray(0, 2).toString('hex')).toBe('d920');
    expect(packForLua(new Uint8Array(0x100)).subarray(0, 3).toString('hex')).toBe('da0100');
    expect(packForLua(new Uint8Array(0x10000)).subarray(0, 5).toString('hex')).toBe('db00010000');
  });

  it('writes array headers for 16 items and more', () => {
    const sixteen = Array.from({ length: 16 }, () => '');
    expect(packForLua(sixteen).subarray(0, 3).toString('hex')).toBe('dc0010');
    expect(unpackr.unpack(packForLua(sixteen))).toEqual(sixteen);
  });
});
