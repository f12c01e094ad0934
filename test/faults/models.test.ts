/**
 * The fault tests rely on two properties of their models, checked here on onnxruntime-node itself:
 * the poison model throws for a batch holding the poison index and for no other, and the slow model
 * is an exact identity.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { POISON_INDEX, POISON_TABLE_ROWS, SLOW_WIDTH, writeFaultModelRepository } from './models.ts';

const repository = writeFaultModelRepository({ slowDepth: 4 });

afterAll(() => {
  rmSync(repository, { recursive: true, force: true });
});

async function open(name: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(join(repository, name, '1', 'model.onnx'), { intraOpNumThreads: 1 });
}

describe('poison model', () => {
  it('gathers table rows for in-range indices, negative ones counted from the end', async () => {
    const session = await open('poison');
    const index = new ort.Tensor('int64', BigInt64Array.from([0n, 3n, 15n, -1n]), [4]);
    const { y } = await session.run({ index });
    expect(y?.dims).toEqual([4, 2]);
    expect(Array.from(y?.data as Float32Array)).toEqual([0, 0.5, 3, 3.5, 15, 15.5, 15, 15.5]);
    await session.release();
  });

  it('throws for a batch holding the poison index, and only for such a batch', async () => {
    const session = await open('poison');
    const rows = [1n, 2n, BigInt(POISON_INDEX), 4n];
    await expect(
      session.run({ index: new ort.Tensor('int64', BigInt64Array.from(rows), [rows.length]) }),
    ).rejects.toThrow(/out of/i);
    for (const row of rows) {
      const run = session.run({ index: new ort.Tensor('int64', BigInt64Array.from([row]), [1]) });
      if (row === BigInt(POISON_INDEX)) await expect(run).rejects.toThrow(/out of/i);
      else expect(Array.from((await run).y?.data as Float32Array)).toEqual([Number(row), Number(row) + 0.5]);
    }
    expect(POISON_INDEX).toBeGreaterThanOrEqual(POISON_TABLE_ROWS);
    await session.release();
  });
});

describe('slow model', () => {
  it('returns its input exactly', async () => {
    const session = await open('slow');
    const data = Float32Array.from({ length: 3 * SLOW_WIDTH }, (_, i) => (i % 97) - 48.25);
    const { y } = await session.run({ x: new ort.Tensor('float32', data, [3, SLOW_WIDTH]) });
    expect(y?.dims).toEqual([3, SLOW_WIDTH]);
    expect(Array.from(y?.data as Float32Array)).toEqual(Array.from(data));
    await session.release();
  });
});
