import { describe, expect, it } from 'vitest';
import {
  decodeCompletionHead,
  decodeCompletionMessage,
  decodeRecord,
  encodeCompletionMessage,
  encodeCompletionMessageForOutputs,
  encodeCompletionMessageWithEncodedOutputs,
  encodeRecord,
  encodeRecordFromCompletionMessage,
  encodeTensorMap,
  MESSAGE_OUTPUT_BYTES,
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

describe('encodeCompletionMessageForOutputs', () => {
  it('carries outputs up to MESSAGE_OUTPUT_BYTES, and leaves larger ones to the record', () => {
    const small = encodeTensorMap(outputs);
    expect(decodeCompletionMessage(encodeCompletionMessageForOutputs(message, small))).toEqual({
      ...message,
      outputs,
    });
    const large = encodeTensorMap({
      y: {
        dtype: 'float32',
        shape: [1, MESSAGE_OUTPUT_BYTES / 4],
        data: new Float32Array(MESSAGE_OUTPUT_BYTES / 4),
      },
    });
    expect(large.byteLength).toBeGreaterThan(MESSAGE_OUTPUT_BYTES);
    const bytes = encodeCompletionMessageForOutputs(message, large);
    expect(decodeCompletionMessage(bytes)).toEqual({ ...message, outputsOmitted: true });
    expect(bytes.byteLength).toBeLessThan(512);
    expect(decodeCompletionMessage(encodeCompletionMessageForOutputs(message, undefined))).toEqual(message);
  });
});

describe('decodeCompletionHead', () => {
  it('gives every field of the message but its outputs', () => {
    const bytes = encodeCompletionMessageWithEncodedOutputs(message, encodeTensorMap(outputs));
    expect(decodeCompletionHead(bytes)).toEqual(message);
  });
});

describe('encodeRecordFromCompletionMessage', () => {
  const createdAt = '2026-11-24T00:00:00.000Z';

  it('is the record encodeRecord writes, outputs copied as bytes, for a message with outputs', () => {
    const bytes = encodeCompletionMessageWithEncodedOutputs(message, encodeTensorMap(outputs));
    const record = encodeRecordFromCompletionMessage(bytes, { createdAt });
    expect(decodeRecord(record, 'msgpack')).toEqual(
      decodeRecord(encodeRecord({ ...message, createdAt, outputs }, 'msgpack'), 'msgpack'),
    );
  });

  it('writes the same record for a message whose map is not a fixmap (decoded and encoded again)', () => {
    const fixmap = encodeCompletionMessageWithEncodedOutputs(message, encodeTensorMap(outputs));
    // The same map behind a map16 header: 0xde and a 16-bit count instead of 0x8N.
    const map16 = new Uint8Array(fixmap.byteLength + 2);
    map16.set([0xde, 0x00, (fixmap[0] ?? 0) & 0x0f], 0);
    map16.set(fixmap.subarray(1), 3);
    expect(decodeRecord(encodeRecordFromCompletionMessage(map16, { createdAt }), 'msgpack')).toEqual(
      decodeRecord(encodeRecordFromCompletionMessage(fixmap, { createdAt }), 'msgpack'),
    );
  });

  it('adds the metadata, and writes a failed request without outputs the same way', () => {
    const failed = {
      ...message,
      status: 'failed' as const,
      error: { code: 'inference_failed', message: 'boom' },
    };
    const metadata = { user: 'u-1', attempt: 2, tags: ['a', 'b'] };
    const record = encodeRecordFromCompletionMessage(encodeCompletionMessage(failed), {
      createdAt,
      metadata,
    });
    expect(decodeRecord(record, 'msgpack')).toEqual({ ...failed, createdAt, metadata });
  });
});
