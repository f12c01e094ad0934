import { describe, expect, it } from 'vitest';
import { type BulkTarget, chunkIdempotencyKey, planChunks } from './chunks.ts';

async function chunksOf(sizes: number[], limits: { maxRequests: number; maxBytes: number }) {
  async function* items() {
    for (const [index, bytes] of sizes.entries()) yield { index, bytes };
  }
  const chunks: number[][] = [];
  for await (const chunk of planChunks(items(), limits)) chunks.push(chunk.map((item) => item.index));
  return chunks;
}

describe('planChunks', () => {
  it('cuts at maxRequests inputs, in order', async () => {
    expect(await chunksOf([1, 1, 1, 1, 1, 1, 1], { maxRequests: 3, maxBytes: 100 })).toEqual([
      [0, 1, 2],
      [3, 4, 5],
      [6],
    ]);
  });

  it('cuts before the input that would pass maxBytes; a larger input goes alone', async () => {
    expect(await chunksOf([40, 40, 30, 200, 10, 90], { maxRequests: 10, maxBytes: 100 })).toEqual([
      [0, 1],
      [2],
      [3],
      [4, 5],
    ]);
  });

  it('yields nothing for no inputs', async () => {
    expect(await chunksOf([], { maxRequests: 3, maxBytes: 100 })).toEqual([]);
  });
});

describe('chunkIdempotencyKey', () => {
  const target: BulkTarget = { model: 'noop', version: undefined, format: 'msgpack' };
  const members = [
    { ref: { line: 1 }, sha256: 'a'.repeat(64) },
    { ref: { line: 2 }, sha256: 'b'.repeat(64) },
  ];

  it('is the same for the same members and target, and a header the API takes', () => {
    const key = chunkIdempotencyKey(target, members);
    expect(key).toBe(
      chunkIdempotencyKey(
        { ...target },
        members.map((m) => ({ ...m })),
      ),
    );
    expect(key).toMatch(/^inferq-bulk-[0-9a-f]{64}$/);
  });

  it('changes with any member, its content, their order, the model, the version or the format', () => {
    const key = chunkIdempotencyKey(target, members);
    const variants = [
      chunkIdempotencyKey(target, members.slice(0, 1)),
      chunkIdempotencyKey(target, [members[0]!, { ref: { line: 2 }, sha256: 'c'.repeat(64) }]),
      chunkIdempotencyKey(target, [members[0]!, { ref: { line: 3 }, sha256: 'b'.repeat(64) }]),
      chunkIdempotencyKey(target, [members[0]!, { ref: { file: '2' }, sha256: 'b'.repeat(64) }]),
      chunkIdempotencyKey(target, [...members].reverse()),
      chunkIdempotencyKey({ ...target, model: 'other' }, members),
      chunkIdempotencyKey({ ...target, version: 1 }, members),
      chunkIdempotencyKey({ ...target, format: 'json' }, members),
    ];
    expect(new Set([key, ...variants]).size).toBe(variants.length + 1);
  });
});
