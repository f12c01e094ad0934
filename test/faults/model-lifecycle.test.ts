/**
 * Model states and hot reload against `inferq serve` as the README starts it: one bad model never
 * takes the service down, and models come and go without a restart while a client submits.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { ModelDescription } from '@inferq/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { writeAffineModel, writeModel } from '../helpers/onnx-models.ts';
import { type AllInOne, startAllInOne } from '../helpers/processes.ts';

const dirs: string[] = [];
const running: AllInOne[] = [];

afterAll(async () => {
  for (const serve of running) await serve.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function repositoryDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'inferq-lifecycle-'));
  dirs.push(dir);
  return dir;
}

const modelPath = (repo: string, name: string, version: number): string =>
  join(repo, name, String(version), 'model.onnx');

/** Loads (its signature reads fine) but onnxruntime has no such operator. */
function writeUnloadableModel(path: string): void {
  writeModel(path, {
    inputs: [{ name: 'x', dtype: 'float32', shape: ['N', 4] }],
    outputs: [{ name: 'y', dtype: 'float32', shape: ['N', 4] }],
    nodes: [{ op: 'NoSuchOperator', inputs: ['x'], outputs: ['y'] }],
  });
}

/**
 * x [N,K] · w [3,2]: loads, and runs for K = 3, but the warm-up feeds dynamic dims of 1 (K = 1),
 * which MatMul refuses.
 */
function writeWarmupFailingModel(path: string): void {
  writeModel(path, {
    inputs: [{ name: 'x', dtype: 'float32', shape: ['N', 'K'] }],
    outputs: [{ name: 'y', dtype: 'float32', shape: ['N', 2] }],
    nodes: [{ op: 'MatMul', inputs: ['x', 'w'], outputs: ['y'] }],
    initializers: [{ name: 'w', dims: [3, 2], values: [1, 0, 0, 1, 1, 1] }],
  });
}

type Described = Pick<
  ModelDescription,
  'name' | 'defaultVersion' | 'versions' | 'ready' | 'executionProvider' | 'versionStates'
>;

async function models(base: string): Promise<Described[]> {
  const response = await fetch(`${base}/v1/models`);
  expect(response.status).toBe(200);
  return ((await response.json()) as { models: Described[] }).models;
}

function affineBody(values: number[]): string {
  return JSON.stringify({ inputs: { x: { dtype: 'float32', shape: [1, 4], data: values } }, cache: false });
}

async function submit(base: string, path: string, body: string, prefer?: string): Promise<Response> {
  return fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(prefer ? { prefer } : {}) },
    body,
  });
}

/** Polls until `check` passes (each model change needs a repository poll and a load). */
async function eventually<T>(what: string, read: () => Promise<T>, check: (value: T) => boolean): Promise<T> {
  let last: T | undefined;
  for (let i = 0; i < 300; i++) {
    last = await read();
    if (check(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} never happened; last seen: ${JSON.stringify(last)}`);
}

/** A warm-up sample for writeWarmupFailingModel: one row of K = 3. */
const MATMUL_SAMPLE = { inputs: { x: { dtype: 'float32', shape: [1, 3], data: [1, 2, 3] } } };

describe('a repository with a good model, an unloadable one and one that fails its warm-up', () => {
  it('starts, serves the good one, and shows the others unavailable with their reasons', async () => {
    const repo = repositoryDir();
    writeAffineModel(modelPath(repo, 'good', 1), { scale: 2, bias: 1 });
    writeUnloadableModel(modelPath(repo, 'unloadable', 1));
    writeWarmupFailingModel(modelPath(repo, 'coldfail', 1));
    // The same model with a warm-up sample of its own is served; with a sample of the wrong dtype it is not.
    writeWarmupFailingModel(modelPath(repo, 'warmed', 1));
    writeFileSync(join(repo, 'warmed', '1', 'warmup.json'), JSON.stringify(MATMUL_SAMPLE));
    writeWarmupFailingModel(modelPath(repo, 'badsample', 1));
    const badSample = join(repo, 'badsample', '1', 'warmup.json');
    writeFileSync(
      badSample,
      JSON.stringify({ inputs: { x: { ...MATMUL_SAMPLE.inputs.x, dtype: 'float64' } } }),
    );
    writeFileSync(join(repo, 'badconfig.json'), 'a file beside the models is skipped');
    const serve = await startAllInOne({ env: { MODEL_REPOSITORY: repo, LOG_LEVEL: 'warn' } });
    running.push(serve);

    const listed = await models(serve.url);
    expect(listed.map((m) => m.name)).toEqual(['badsample', 'coldfail', 'good', 'unloadable', 'warmed']);
    const byName = new Map(listed.map((m) => [m.name, m]));
    const good = byName.get('good')!;
    expect(good).toMatchObject({ ready: true, defaultVersion: 1, executionProvider: 'cpu' });
    expect(good.versionStates).toEqual([
      {
        version: 1,
        state: 'ready',
        liveWorkers: 1,
        providers: ['cpu'],
        accepting: true,
        loadMs: expect.any(Number),
        warmupMs: expect.any(Number),
        // The cost model its worker measured at warm-up: 1, 2, 4 … maxBatchSize (32) rows.
        batchCosts: {
          batchSizes: [1, 2, 4, 8, 16, 32].map((batchSize) => ({ batchSize, ms: expect.any(Number) })),
          overheadMs: expect.any(Number),
          kneeBatchSize: expect.any(Number),
          bestBatchSize: expect.any(Number),
        },
      },
    ]);
    const costs = good.versionStates[0]!.batchCosts!;
    expect(costs.kneeBatchSize).toBeGreaterThanOrEqual(1);
    expect(costs.bestBatchSize).toBeGreaterThanOrEqual(costs.kneeBatchSize);
    expect(costs.bestBatchSize).toBeLessThanOrEqual(32);
    // The worker exports the same cost model.
    const exported = await (await fetch(`${serve.metricsUrl}/metrics`)).text();
    for (const { batchSize } of costs.batchSizes)
      expect(exported).toMatch(
        new RegExp(
          `^inferq_batch_cost_ms\\{model="good",version="1",batch_size="${batchSize}",service="worker"\\} [0-9.e-]+$`,
          'm',
        ),
      );
    expect(exported).toMatch(
      /^inferq_batch_size_target\{model="good",version="1",size="knee",service="worker"\} [0-9]+$/m,
    );
    expect(exported).toMatch(
      /^inferq_batch_size_target\{model="good",version="1",size="best",service="worker"\} [0-9]+$/m,
    );
    const unloadable = byName.get('unloadable')!.versionStates[0]!;
    expect(unloadable).toMatchObject({ version: 1, state: 'unavailable', accepting: false, liveWorkers: 0 });
    // onnxruntime's own words, after ours.
    expect(unloadable.reason).toMatch(/^cannot load: .*NoSuchOperator/);
    const coldfail = byName.get('coldfail')!.versionStates[0]!;
    expect(coldfail).toMatchObject({ version: 1, state: 'unavailable', accepting: false });
    expect(coldfail.reason).toMatch(/^warm-up failed: .*MatMul/);
    expect(byName.get('coldfail')!.executionProvider).toBeNull();
    expect(byName.get('warmed')!.versionStates[0]).toMatchObject({
      version: 1,
      state: 'ready',
      accepting: true,
    });
    const badsample = byName.get('badsample')!.versionStates[0]!;
    expect(badsample).toMatchObject({
      version: 1,
      state: 'unavailable',
      accepting: false,
      reason: `${badSample}: warm-up sample: input 'x' is float64; the model expects float32`,
    });

    const warmed = await submit(
      serve.url,
      '/v1/models/warmed/infer',
      JSON.stringify({ ...MATMUL_SAMPLE, cache: false }),
      'wait=10',
    );
    expect(warmed.status).toBe(200);
    expect(await warmed.json()).toMatchObject({
      status: 'succeeded',
      outputs: { y: { dtype: 'float32', shape: [1, 2], data: [4, 5] } },
    });

    const served = await submit(serve.url, '/v1/models/good/infer', affineBody([1, 2, 3, 4]), 'wait=10');
    expect(served.status).toBe(200);
    expect(await served.json()).toMatchObject({
      status: 'succeeded',
      outputs: { y: { dtype: 'float32', shape: [1, 4], data: [3, 5, 7, 9] } },
    });
    for (const name of ['unloadable', 'coldfail']) {
      const refused = await submit(serve.url, `/v1/models/${name}/infer`, affineBody([1, 2, 3, 4]));
      expect(refused.status).toBe(503);
      expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(refused.headers.get('retry-after')).toBe('5');
      const problem = (await refused.json()) as { type: string; detail: string };
      expect(problem.type).toBe('https://inferq.dev/problems/model-unavailable');
      expect(problem.detail).toContain(byName.get(name)!.versionStates[0]!.reason);
    }

    const readiness = await fetch(`${serve.url}/readyz`);
    expect(readiness.status).toBe(200);
    expect(await readiness.json()).toMatchObject({
      ready: true,
      unavailable: [
        { name: 'badsample', version: 1, reason: badsample.reason },
        { name: 'coldfail', version: 1, reason: coldfail.reason },
        { name: 'unloadable', version: 1, reason: unloadable.reason },
      ],
    });
    const metrics = await (await fetch(`${serve.url}/metrics`)).text();
    expect(metrics).toContain('inferq_model_state{model="good",version="1",state="ready",service="api"} 1');
    expect(metrics).toContain(
      'inferq_model_state{model="unloadable",version="1",state="unavailable",service="api"} 1',
    );
    const workerMetrics = await (await fetch(`${serve.metricsUrl}/metrics`)).text();
    expect(workerMetrics).toContain(
      'inferq_model_state{model="coldfail",version="1",state="unavailable",service="worker"} 1',
    );
    expect(await serve.stop()).toBe(0);
  });
});

describe('hot reload under a steady load', () => {
  it('serves a new model and version within a poll, retires the old version, and ends every accepted request', async () => {
    const repo = repositoryDir();
    writeAffineModel(modelPath(repo, 'affine', 1), { scale: 1, bias: 0 });
    const serve = await startAllInOne({
      env: { MODEL_REPOSITORY: repo, REPOSITORY_POLL_SECONDS: '1', LOG_LEVEL: 'warn' },
    });
    running.push(serve);

    // A client submitting continuously: to the default version, and pinned to version 1.
    const accepted: { id: string; x: number }[] = [];
    const refusals = new Map<number, number>();
    let sending = true;
    let sent = 0;
    const client = (async () => {
      while (sending) {
        const x = sent++;
        const path = x % 2 === 0 ? '/v1/models/affine/infer' : '/v1/models/affine/versions/1/infer';
        const response = await submit(serve.url, path, affineBody([x, x, x, x]));
        if (response.status === 202) accepted.push({ id: ((await response.json()) as { id: string }).id, x });
        else {
          refusals.set(response.status, (refusals.get(response.status) ?? 0) + 1);
          await response.arrayBuffer();
        }
      }
    })();

    await eventually(
      'load',
      async () => accepted.length,
      (n) => n >= 20,
    );
    writeAffineModel(modelPath(repo, 'affine', 2), { scale: 2, bias: 0 });
    writeAffineModel(modelPath(repo, 'extra', 1), { scale: 3, bias: 0 });
    const afterAdd = await eventually(
      'v2 and the new model ready',
      () => models(serve.url),
      (list) =>
        list.find((m) => m.name === 'affine')?.defaultVersion === 2 &&
        list.find((m) => m.name === 'extra')?.ready === true,
    );
    expect(afterAdd.find((m) => m.name === 'affine')?.versionStates.map((v) => [v.version, v.state])).toEqual(
      [
        [1, 'ready'],
        [2, 'ready'],
      ],
    );
    const extra = await submit(serve.url, '/v1/models/extra/infer', affineBody([1, 1, 1, 1]), 'wait=10');
    expect(await extra.json()).toMatchObject({ status: 'succeeded', outputs: { y: { data: [3, 3, 3, 3] } } });
    const acceptedBeforeRemoval = accepted.length;
    await eventually(
      'more load on v2',
      async () => accepted.length,
      (n) => n >= acceptedBeforeRemoval + 20,
    );

    rmSync(join(repo, 'affine', '1'), { recursive: true, force: true });
    await eventually(
      'version 1 gone',
      () => models(serve.url),
      (list) => list.find((m) => m.name === 'affine')?.versions.join() === '2',
    );
    const afterRemoval = accepted.length;
    await eventually(
      'load after the removal',
      async () => accepted.length,
      (n) => n >= afterRemoval + 20,
    );
    sending = false;
    await client;

    const pinned = await submit(serve.url, '/v1/models/affine/versions/1/infer', affineBody([1, 2, 3, 4]));
    expect(pinned.status).toBe(404);
    // The only refusals: version 1 while it was leaving (404 once gone, 503 while the fleet saw it
    // retired). Nothing else failed.
    expect([...refusals.keys()].every((status) => status === 404 || status === 503)).toBe(true);

    const endings = new Map<string, number>();
    for (const { id, x } of accepted) {
      const response = await fetch(`${serve.url}/v1/requests/${id}?wait=30`);
      expect(response.status).toBe(200);
      const record = (await response.json()) as {
        status: string;
        version: number;
        error?: { code: string };
        outputs?: { y: { data: number[] } };
      };
      const ending =
        record.status === 'succeeded'
          ? `succeeded v${record.version}`
          : `${record.status} ${record.error?.code}`;
      endings.set(ending, (endings.get(ending) ?? 0) + 1);
      if (record.status === 'succeeded') {
        const scale = record.version;
        expect(record.outputs?.y.data).toEqual([x * scale, x * scale, x * scale, x * scale]);
      } else {
        // A request pinned to version 1 that no worker ran before it left the repository.
        expect(record).toMatchObject({
          status: 'failed',
          version: 1,
          error: { code: 'model_version_retired' },
        });
      }
    }
    console.log(
      `hot reload: sent=${sent} accepted=${accepted.length} refused=${JSON.stringify(Object.fromEntries(refusals))} endings=${JSON.stringify(Object.fromEntries(endings))}`,
    );
    expect(endings.get('succeeded v1')).toBeGreaterThan(0);
    expect(endings.get('succeeded v2')).toBeGreaterThan(0);
    expect(await serve.stop()).toBe(0);
  });
});

describe('reload on demand', () => {
  it('reads the repository again on `inferq models reload` and on SIGHUP, with polling off', async () => {
    const repo = repositoryDir();
    writeAffineModel(modelPath(repo, 'first', 1), { scale: 1, bias: 0 });
    const serve = await startAllInOne({
      env: { MODEL_REPOSITORY: repo, REPOSITORY_POLL_SECONDS: '0', LOG_LEVEL: 'warn' },
    });
    running.push(serve);
    const names = async (): Promise<string> =>
      (await models(serve.url))
        .filter((m) => m.ready)
        .map((m) => m.name)
        .join();

    writeAffineModel(modelPath(repo, 'second', 1), { scale: 2, bias: 0 });
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['apps/cli/dist/main.js', 'models', 'reload'],
      { cwd: resolve(import.meta.dirname, '..', '..'), env: { ...process.env, REDIS_URL: serve.redis!.url } },
    );
    // The API and the worker heard it.
    expect(JSON.parse(stdout)).toEqual({ reload: 'requested', processes: 2 });
    await eventually('second ready', names, (ready) => ready === 'first,second');

    writeAffineModel(modelPath(repo, 'third', 1), { scale: 3, bias: 0 });
    process.kill(serve.pid, 'SIGHUP');
    await eventually('third ready', names, (ready) => ready === 'first,second,third');
    const third = await submit(serve.url, '/v1/models/third/infer', affineBody([1, 2, 3, 4]), 'wait=10');
    expect(await third.json()).toMatchObject({
      status: 'succeeded',
      outputs: { y: { data: [3, 6, 9, 12] } },
    });
    expect(await serve.stop()).toBe(0);
  });
});
