import { describe, expect, it } from 'vitest';
import {
  decodeCompletionMessage,
  encodeCompletionMessage,
  encodeCompletionMessageWithEncodedOutputs,
  encodeTensorMap,
  withCompletionMessageId,
} from './codec.ts';
import type { CompletionMessage, TensorMap } from './types.ts';

const outputs: TensorMap = {
  y: { dtype: 'float32', shape: [2, 2], data: new Float32Array([1.5, -2, 3, 4]) },
  label: { dtype: 'int64', shape: [2], data: new BigInt64Array([7n, -1n]) },
};

const message: Omit<CompletionMessage, 'outputs'> = {
  id: 'AAAAAAAAAAAAAAAAAAAAAA',
  status: 'succeeded',
  model: 'm',
  version: 3,
  cached: false,
  timings: { queueMs: 1, batchWaitMs: 0, inferMs: 2.5, totalMs: 4 },
  startedAt: '2026-11-24T00:00:00.000Z',
  finishedAt: '2026-11-24T00:00:00.004Z',
  batchSize: 2,
};

describe('encodeCompletionMessageWithEncodedOutputs', () => {
  it('decodes to the same message as encoding the outputs from tensors', () => {
    const spliced = encodeCompletionMessageWithEncodedOutputs(message, encodeTensorMap(outputs));
    const expected = decodeCompletionMessage(encodeCompletionMessage({ ...message, outputs }));
    expect(decodeCompletionMessage(spliced)).toEqual(expected);
    expect(decodeCompletionMessage(spliced)).toEqual({ ...message, outputs });
  });

  it('keeps the id first, so a follower can get the same message with its own id', () => {
    const spliced = encodeCompletionMessageWithEncodedOutputs(message, encodeTensorMap(outputs));
    const follower = withCompletionMessageId(spliced, 'BBBBBBBBBBBBBBBBBBBBBA');
    expect(decodeCompletionMessage(follower)).toEqual({ ...message, id: 'BBBBBBBBBBBBBBBBBBBBBA', outputs });
  });
});
