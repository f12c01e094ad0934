/**
 * The wire format must be readable and writable by Python's `msgpack` + `numpy.frombuffer`
 * (docs/api.md "Tensors on the wire"). These tests run examples/python/codec_check.py with Debian's
 * /usr/bin/python3; they fail, never skip, when python3-msgpack or python3-numpy is missing.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { decodeInferRequest, encodeCompletionMessage, encodePayload, encodeRecord } from './codec.ts';
import { newRequestId } from './request-id.ts';
import { tensorDataToList } from './tensor.ts';
import { mapValues, sampleTensors } from './test-support.ts';
import type { Tensor } from './types.ts';

const PYTHON = '/usr/bin/python3';
const CODEC_CHECK = fileURLToPath(new URL('../../../examples/python/codec_check.py', import.meta.url));

let workDir: string;

beforeAll(() => {
  const probe = spawnSync(PYTHON, ['-c', 'import msgpack, numpy'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error(
      `${PYTHON} with the msgpack and numpy modules is needed for the Python interop tests ` +
        `(Debian: apt-get install python3-msgpack python3-numpy): ${probe.error?.message ?? probe.stderr.trim()}`,
    );
  }
  workDir = mkdtempSync(join(tmpdir(), 'inferq-python-interop-'));
});

afterAll(() => {
  if (workDir !== undefined) rmSync(workDir, { recursive: true, force: true });
});

/** Runs codec_check.py on `bytes` and returns what it printed, parsed. */
function decodeWithPython(name: string, bytes: Uint8Array): unknown {
  const file = join(workDir, name);
  writeFileSync(file, bytes);
  const result = spawnSync(PYTHON, [CODEC_CHECK, file], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`codec_check.py failed: ${result.stderr.trim()}`);
  return JSON.parse(result.stdout);
}

const asJsonTensor = (tensor: Tensor) => ({
  dtype: tensor.dtype,
  shape: tensor.shape,
  data: tensorDataToList(tensor),
});

test('Python reads encodePayload bytes of every dtype with msgpack + numpy.frombuffer', () => {
  const inputs = sampleTensors();
  const decoded = decodeWithPython('payload.msgpack', encodePayload({ inputs, outputs: ['y', 'z'] }));
  expect(decoded).toEqual({ inputs: mapValues(inputs, asJsonTensor), outputs: ['y', 'z'] });
});

test('Python reads the MessagePack request record and completion message', () => {
  const outputs = sampleTensors();
  const timings = { queueMs: 1, batchWaitMs: 0, inferMs: 2.5, totalMs: 3.5 };
  const id = newRequestId();
  const record = decodeWithPython(
    'record.msgpack',
    encodeRecord(
      {
        id,
        model: 'm',
        version: 1,
        status: 'succeeded',
        cached: true,
        createdAt: '2024-01-01T00:00:00.000Z',
        timings,
        outputs,
      },
      'msgpack',
    ),
  );
  expect(record).toEqual({
    id,
    model: 'm',
    version: 1,
    status: 'succeeded',
    cached: true,
    createdAt: '2024-01-01T00:00:00.000Z',
    timings,
    outputs: mapValues(outputs, asJsonTensor),
  });
  const message = decodeWithPython(
    'message.msgpack',
    encodeCompletionMessage({
      id,
      status: 'succeeded',
      model: 'm',
      version: 1,
      cached: false,
      timings,
      outputs,
    }),
  );
  expect(Object.keys(message as object)[0]).toBe('id');
  expect((message as { outputs: unknown }).outputs).toEqual(mapValues(outputs, asJsonTensor));
});

test('codec_check.py itself refuses extension types (so the checks above mean something)', () => {
  const file = join(workDir, 'ext.msgpack');
  writeFileSync(file, new Uint8Array([0x81, 0xa1, 0x61, 0xd4, 0x74, 0x00])); // {a: fixext1}
  const result = spawnSync(PYTHON, [CODEC_CHECK, file], { encoding: 'utf8' });
  expect(result.status).toBe(1);
  expect(result.stderr).toMatch(/extension type 116/);
});

test('decodeInferRequest reads what Python writes with msgpack.packb(..., use_bin_type=True)', () => {
  const file = join(workDir, 'request.msgpack');
  execFileSync(PYTHON, [CODEC_CHECK, '--write', file]);
  const request = decodeInferRequest(readFileSync(file), 'msgpack');
  expect(request).toEqual({
    inputs: {
      f32: {
        dtype: 'float32',
        shape: [2, 2],
        data: new Float32Array([1.5, -2, Number.NaN, Number.POSITIVE_INFINITY]),
      },
      f64: { dtype: 'float64', shape: [3], data: new Float64Array([0.1, -1e300, Number.NEGATIVE_INFINITY]) },
      f16: { dtype: 'float16', shape: [3], data: new Uint16Array([0x3800, 0xbc00, 0x7bff]) },
      i8: { dtype: 'int8', shape: [2], data: new Int8Array([-128, 127]) },
      i32: { dtype: 'int32', shape: [2], data: new Int32Array([-(2 ** 31), 2 ** 31 - 1]) },
      i64: {
        dtype: 'int64',
        shape: [3],
        data: new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 2n ** 53n + 1n]),
      },
      u16: { dtype: 'uint16', shape: [2], data: new Uint16Array([0, 65535]) },
      u64: { dtype: 'uint64', shape: [1], data: new BigUint64Array([2n ** 64n - 1n]) },
      flag: { dtype: 'bool', shape: [3], data: new Uint8Array([1, 0, 1]) },
      text: { dtype: 'string', shape: [2], data: ['héllo', ''] },
      empty: { dtype: 'float32', shape: [0, 2], data: new Float32Array(0) },
      scalar: { dtype: 'float64', shape: [], data: new Float64Array([3.25]) },
    },
    outputs: ['y'],
    priority: 2,
    timeoutMs: 5000,
    metadata: { origin: 'python', attempt: 1 },
  });
});
