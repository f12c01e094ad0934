/**
 * MAX_OUTPUT_BYTES end to end in one process: real HTTP into the API, a real ModelWorker running
 * onnxruntime-node, a real Redis. An identity model over float32 [N, 1024] returns 4 KiB per row,
 * so one row fits under a 6,000-byte cap and two rows do not.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, createMetrics } from '@inferq/observability';
import { loadModelRepository, type ModelRepository } from '@inferq/repository';
import { ModelSession } from '@inferq/runtime';
import { createRedisConnection, RequestStore } from '@inferq/store';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { writeIdentityModel } from '../helpers/onnx-models.ts';
import { startModelWorker, type TestModelWorker } from '../helpers/queue.ts';
import { postJson, startTestApi, type TestApi } from '../helpers/test-api.ts';

const WIDTH = 1024;
const MAX_OUTPUT_BYTES = 6000;

let dir: string;
let repository: ModelRepository;
let api: TestApi;
let session: ModelSession;
let workerRedis: Redis;
let workerStore: RequestStore;
let worker: TestModelWorker;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'inferq-output-cap-'));
  writeIdentityModel(join(dir, 'wide', '1', 'model.onnx'), 'float32', [WIDTH]);
  repository = await loadModelRepository(dir);
  api = await startTestApi({
    redisUrl: inject('redisUrl'),
    repository,
    modelRepository: dir,
    env: { MAX_OUTPUT_BYTES: String(MAX_OUTPUT_BYTES) },
  });
  const version = repository.get('wide');
  if (version === undefined) throw new Error('model wide missing');
  session = await ModelSession.open(version);
  workerRedis = createRedisConnection(inject('redisUrl'), 'worker');
  workerStore = new RequestStore({ redis: workerRedis, prefix: api.prefix, resultTtlSeconds: 60 });
  worker = startModelWorker({
    redisUrl: inject('redisUrl'),
    version,
    session,
    store: workerStore,
    jobAttempts: 3,
    maxOutputBytes: api.config.caps.maxOutputBytes,
    metrics: createMetrics('worker'),
    logger: createLogger(api.config, 'worker'),
  });
});

afterAll(async () => {
  await worker?.close();
  await session?.close();
  workerRedis?.disconnect();
  await api?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function infer(rows: number, fill: number): Promise<Record<string, unknown>> {
  const response = await postJson(
    api,
    '/v1/models/wide/infer',
    { inputs: { x: { dtype: 'float32', shape: [rows, WIDTH], data: Array(rows * WIDTH).fill(fill) } } },
    { prefer: 'wait=30' },
  );
  expect(response.status).toBe(200);
  return (await response.json()) as Record<string, unknown>;
}

describe('MAX_OUTPUT_BYTES', () => {
  it('is read from the environment', () => {
    expect(api.config.caps.maxOutputBytes).toBe(MAX_OUTPUT_BYTES);
  });

  it('lets outputs under the cap through', async () => {
    const record = await infer(1, 0.5);
    expect(record).toMatchObject({ status: 'succeeded', cached: false });
    const y = (record.outputs as { y: { shape: number[]; data: number[] } }).y;
    expect(y.shape).toEqual([1, WIDTH]);
    expect(y.data).toEqual(Array(WIDTH).fill(0.5));
  });

  it('ends a request whose outputs exceed it failed, with output_too_large, and caches nothing', async () => {
    const record = await infer(2, 0.25);
    expect(record).toMatchObject({
      status: 'failed',
      cached: false,
      error: {
        code: 'output_too_large',
        message: expect.stringMatching(
          /^the outputs take 8\d{3} bytes, more than the 6000 allowed \(MAX_OUTPUT_BYTES\)/,
        ),
      },
    });
    expect(record.outputs).toBeUndefined();
    // A failure is not a result: the same request runs (and fails) again rather than being served.
    const again = await infer(2, 0.25);
    expect(again).toMatchObject({ status: 'failed', cached: false, error: { code: 'output_too_large' } });
    expect(again.id).not.toBe(record.id);
  });
});
