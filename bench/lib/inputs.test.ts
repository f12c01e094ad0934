import { unpackStandard } from '@inferq/protocol';
import { describe, expect, it } from 'vitest';
import { DistinctInputs } from './inputs.ts';

interface WireTensor {
  dtype: string;
  shape: number[];
  data: Buffer;
}

function tensorOf(body: Buffer): WireTensor {
  const value = unpackStandard(body) as { inputs: { x: WireTensor } };
  return value.inputs.x;
}

function floats(bytes: Buffer): Float32Array {
  const copy = new Uint8Array(bytes);
  return new Float32Array(copy.buffer);
}

describe('DistinctInputs', () => {
  const source = { inputName: 'x', shape: [2, 3], seed: 5 };

  it('encodes a standard MessagePack infer body with a float32 tensor of the shape', () => {
    const body = new DistinctInputs(source).nextBody();
    const tensor = tensorOf(body);
    expect(tensor.dtype).toBe('float32');
    expect(tensor.shape).toEqual([2, 3]);
    expect(tensor.data.byteLength).toBe(6 * 4);
  });

  it('gives the same sequence for the same seed, through bodies and tensors alike', () => {
    const a = new DistinctInputs(source);
    const b = new DistinctInputs(source);
    for (let i = 0; i < 3; i++) {
      expect(Array.from(floats(tensorOf(a.nextBody()).data))).toEqual(Array.from(b.nextTensor()));
    }
    expect(a.issued).toBe(3);
  });

  it('never repeats an input, and keeps the seeded elements after the stamped ones', () => {
    const inputs = new DistinctInputs(source);
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) seen.add(tensorOf(inputs.nextBody()).data.toString('hex'));
    expect(seen.size).toBe(1000);
    const first = new DistinctInputs(source).nextTensor();
    const second = new DistinctInputs({ ...source, seed: 6 }).nextTensor();
    expect(Array.from(first.slice(0, 2))).toEqual([0, 0]);
    expect(Array.from(first.slice(3))).not.toEqual(Array.from(second.slice(3)));
  });

  it('builds an infer:bulk body of distinct requests', () => {
    const inputs = new DistinctInputs(source);
    const value = unpackStandard(inputs.nextBulkBody(4)) as { requests: { inputs: { x: WireTensor } }[] };
    expect(value.requests).toHaveLength(4);
    const hex = value.requests.map((request) => request.inputs.x.data.toString('hex'));
    expect(new Set(hex).size).toBe(4);
    expect(value.requests[0]?.inputs.x.shape).toEqual([2, 3]);
    expect(inputs.issued).toBe(4);
  });
});
