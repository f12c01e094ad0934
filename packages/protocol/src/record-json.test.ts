import { describe, expect, it } from 'vitest';
import { encodeRecord } from './codec.ts';
import { encodeRecordJsonPieces } from './record-json.ts';
import type { RequestRecord } from './types.ts';

const base: RequestRecord = {
  id: 'AAAAAAAAAAAAAAAAAAAAAA',
  model: 'm',
  version: 1,
  status: 'succeeded',
  cached: false,
  createdAt: '2026-01-01T00:00:00.000Z',
  finishedAt: '2026-01-01T00:00:00.004Z',
  timings: { queueMs: 1, batchWaitMs: 0, inferMs: 2, totalMs: 4 },
  batchSize: 1,
  metadata: { note: 'outputs: "[]"' },
};

describe('encodeRecordJsonPieces', () => {
  it('concatenates to exactly the JSON encodeRecord writes, for every kind of data and piece size', () => {
    const floats = new Float32Array(1000).map((_, i) => (i % 7 === 0 ? Number.NaN : i / 3));
    const record: RequestRecord = {
      ...base,
      outputs: {
        y: { dtype: 'float32', shape: [10, 100], data: floats },
        ids: { dtype: 'int64', shape: [3], data: new BigInt64Array([1n, -2n, 2n ** 60n]) },
        ok: { dtype: 'bool', shape: [2], data: new Uint8Array([1, 0]) },
        text: { dtype: 'string', shape: [3], data: ['a', '"b"', ''] },
        none: { dtype: 'float32', shape: [0], data: new Float32Array(0) },
      },
    };
    const expected = new TextDecoder().decode(encodeRecord(record, 'json'));
    for (const size of [1, 2, 7, 999, 1000, 5000]) {
      const pieces = [...encodeRecordJsonPieces(record, size)];
      expect(pieces.join('')).toBe(expected);
    }
    // The data of 1000 elements comes in pieces of at most 7 of them.
    expect([...encodeRecordJsonPieces(record, 7)].length).toBeGreaterThan(1000 / 7);
  });

  it('is one piece for a record without outputs', () => {
    expect([...encodeRecordJsonPieces(base)]).toEqual([new TextDecoder().decode(encodeRecord(base, 'json'))]);
  });
});
