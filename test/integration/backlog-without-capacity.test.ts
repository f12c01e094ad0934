/**
 * `inferq_backlog_without_capacity{model,version}` on the API's /metrics, over a real Redis and real
 * HTTP: requests accepted for a version no live worker holds (WAIT_FOR_CAPACITY=true) show in it, and
 * the version drops to 0 once a worker reports it (ready or loading), while the requests still wait.
 * Worker reports are written to the fleet hash the way workers write them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelRepository, type ModelRepository } from '@inferq/repository';
import type { ServedVersion } from '@inferq/store';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { writeAffineModel } from '../helpers/onnx-models.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis-server.ts';
import { postJson, startTestApi, type TestApi } from '../helpers/test-api.ts';

let modelDir: string;
let repository: ModelRepository;
const open: TestApi[] = [];
let redis: TestRedis | undefined;

beforeAll(async () => {
  modelDir = mkdtempSync(join(tmpdir(), 'inferq-backlog-models-'));
  writeAffineModel(join(modelDir, 'affine', '1', 'model.onnx'), { scale: 3, bias: 0 });
  writeAffineModel(join(modelDir, 'affine', '2', 'model.onnx'), { scale: 2, bias: 1 });
  writeFileSync(join(modelDir, 'affine', 'config.json'), JSON.stringify({ maxBatchSize: 8 }));
  repository = await loadModelRepository(modelDir);
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((api) => api.close()));
  await redis?.stop();
  redis = undefined;
});

afterAll(() => {
  rmSync(modelDir, { recursive: true, force: true });
});

async function startApi(redisUrl: string): Promise<TestApi> {
  // startTestApi sets WAIT_FOR_CAPACITY=true: requests for a version without a worker wait in Redis.
  const api = await startTestApi({ redisUrl, repository, modelRepository: modelDir });
  open.push(api);
  return api;
}

/** Every sample of `name` on the API's /metrics, keyed by its labels other than `service`. */
async function scrape(api: TestApi, name: string): Promise<Record<string, number>> {
  const response = await api.fetch('/metrics');
  expect(response.status).toBe(200);
  const samples: Record<string, number> = {};
  for (const line of (await response.text()).split('\n')) {
    const match = /^(\w+)\{(.*)\} (\S+)$/.exec(line);
    if (match?.[1] !== name) continue;
    const labels = (match[2] ?? '')
      .split(',')
      .filter((label) => !label.startsWith('service='))
      .join(',');
    samples[labels] = Number(match[3]);
  }
  return samples;
}

async function submit(api: TestApi, path: string, first: number): Promise<void> {
  // Distinct inputs, so no request coalesces with another or hits the cache.
  const response = await postJson(api, path, {
    inputs: { x: { dtype: 'float32', shape: [1, 4], data: [first, 0, 0, 0] } },
  });
  expect(response.status).toBe(202);
}

async function reportWorker(api: TestApi, versions: ServedVersion[]): Promise<void> {
  await api.fleet.report({ id: 'worker-1', host: 'h', pid: 1, heartbeatAt: Date.now(), versions });
  await api.catalog.refresh();
}

describe('inferq_backlog_without_capacity', () => {
  it('counts the requests waiting for a version no live worker holds, and 0 once a worker holds it', async () => {
    const api = await startApi(inject('redisUrl'));
    // A series per version before any request, so an alert or a scaler sees 0 rather than nothing.
    expect(await scrape(api, 'inferq_backlog_without_capacity')).toEqual({
      'model="affine",version="1"': 0,
      'model="affine",version="2"': 0,
    });

    for (const first of [1, 2, 3]) await submit(api, '/v1/models/affine/infer', first);
    await submit(api, '/v1/models/affine/versions/1/infer', 4);
    expect(await scrape(api, 'inferq_backlog_without_capacity')).toEqual({
      'model="affine",version="1"': 1,
      'model="affine",version="2"': 3,
    });

    // A worker has version 2 ready: its requests have capacity, though none has run yet.
    await reportWorker(api, [{ model: 'affine', version: 2, state: 'ready', provider: 'cpu' }]);
    expect(await scrape(api, 'inferq_backlog_without_capacity')).toEqual({
      'model="affine",version="1"': 1,
      'model="affine",version="2"': 0,
    });
    expect(await scrape(api, 'inferq_queue_depth')).toEqual({ 'model="affine"': 4 });

    // A worker loading version 1 holds it too: capacity is on its way.
    await reportWorker(api, [
      { model: 'affine', version: 1, state: 'loading' },
      { model: 'affine', version: 2, state: 'ready', provider: 'cpu' },
    ]);
    expect(await scrape(api, 'inferq_backlog_without_capacity')).toEqual({
      'model="affine",version="1"': 0,
      'model="affine",version="2"': 0,
    });
  });

  it('drops its series, and the queue depth, while Redis is unreachable: the scrape still answers', async () => {
    redis = await startTestRedis({ appendonly: false });
    const api = await startApi(redis.url);
    await submit(api, '/v1/models/affine/infer', 1);
    expect(await scrape(api, 'inferq_backlog_without_capacity')).toEqual({
      'model="affine",version="1"': 0,
      'model="affine",version="2"': 1,
    });

    await redis.kill();
    // The alert "Redis unreachable" (deploy/prometheus/rules.yml) reads this absence.
    expect(await scrape(api, 'inferq_backlog_without_capacity')).toEqual({});
    expect(await scrape(api, 'inferq_queue_depth')).toEqual({});
  });
});
