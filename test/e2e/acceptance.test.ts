/**
 * The core acceptance checks, against the all-in-one started the way the README starts it
 * (`inferq serve`: a private redis-server, the API and one worker), over HTTP only.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { RequestStore } from '@inferq/store';
import { Redis } from 'ioredis';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AllInOne, startAllInOne } from '../helpers/processes.ts';
import { enqueuedCount, queueOf as testQueueOf } from '../helpers/queue-backend.ts';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..', '..');
const CLS_MODEL = resolve(ROOT, 'models/demo/ppocr-cls/1/model.onnx');
const CLS_SHAPE = [1, 3, 48, 192];
const CLS_ELEMENTS = 3 * 48 * 192;

let app: AllInOne;
let direct: ort.InferenceSession;

/** The deployment's queues, read and steered the way inferq itself does, over a connection of the test's own. */
function queueOf(deployment: AllInOne): { store: RequestStore; close(): Promise<void> } {
  const redis = new Redis(deployment.redis!.url);
  return {
    store: new RequestStore({ redis, prefix: '{inferq}', resultTtlSeconds: 86_400 }),
    close: async () => {
      await redis.quit();
    },
  };
}

function randomInput(): Float32Array {
  const bytes = randomBytes(CLS_ELEMENTS * 4);
  const data = new Float32Array(CLS_ELEMENTS);
  for (let i = 0; i < CLS_ELEMENTS; i++) data[i] = bytes.readUInt32LE(i * 4) / 0xffffffff - 0.5;
  return data;
}

async function runDirect(data: Float32Array): Promise<number[]> {
  const out = await direct.run({ x: new ort.Tensor('float32', data, CLS_SHAPE) });
  const tensor = out[direct.outputNames[0]!]!;
  return Array.from(tensor.data as Float32Array);
}

function clsBody(data: Float32Array): string {
  return JSON.stringify({ inputs: { x: { dtype: 'float32', shape: CLS_SHAPE, data: Array.from(data) } } });
}

async function post(path: string, body: string | Uint8Array, contentType = 'application/json', headers = {}) {
  return fetch(`${app.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': contentType, ...headers },
    body,
  });
}

interface Record_ {
  id: string;
  status: string;
  cached: boolean;
  batchSize?: number;
  outputs?: Record<string, { dtype: string; shape: number[]; data: number[] }>;
}

async function finished(id: string): Promise<Record_> {
  for (;;) {
    const res = await fetch(`${app.url}/v1/requests/${id}?wait=5`);
    expect(res.status).toBe(200);
    const record = (await res.json()) as Record_;
    if (record.status !== 'queued' && record.status !== 'running') return record;
  }
}

function expectClose(actual: number[], expected: number[]): void {
  expect(actual).toHaveLength(expected.length);
  for (let i = 0; i < expected.length; i++)
    expect(Math.abs(actual[i]! - expected[i]!)).toBeLessThanOrEqual(1e-5);
}

beforeAll(async () => {
  app = await startAllInOne();
  direct = await ort.InferenceSession.create(CLS_MODEL);
});

afterAll(async () => {
  await direct?.release();
  expect(await app?.stop()).toBe(0);
});

describe('all-in-one acceptance', () => {
  it('runs a JSON float32 tensor on ppocr-cls and matches onnxruntime-node run directly', async () => {
    const data = randomInput();
    const res = await post('/v1/models/ppocr-cls/infer', clsBody(data));
    expect(res.status).toBe(202);
    const accepted = (await res.json()) as { id: string; status: string; model: string; version: number };
    expect(accepted).toMatchObject({ status: 'queued', model: 'ppocr-cls', version: 1 });
    expect(res.headers.get('location')).toBe(`/v1/requests/${accepted.id}`);

    const record = await finished(accepted.id);
    expect(record.status).toBe('succeeded');
    const out = record.outputs?.['softmax_0.tmp_0'];
    expect(out?.shape).toEqual([1, 2]);
    expectClose(out?.data ?? [], await runDirect(data));

    // The same input again is a cache hit: 200 at once, and nothing reaches the queue.
    const { store, close } = queueOf(app);
    const enqueuedBefore = await enqueuedCount(store, 'ppocr-cls', 1);
    const again = await post('/v1/models/ppocr-cls/infer', clsBody(data));
    expect(again.status).toBe(200);
    const hit = (await again.json()) as Record_;
    expect(hit).toMatchObject({ status: 'succeeded', cached: true });
    expect(hit.outputs?.['softmax_0.tmp_0']?.data).toEqual(out?.data);
    expect(await enqueuedCount(store, 'ppocr-cls', 1)).toBe(enqueuedBefore);
    await close();
  });

  it('serves 64 concurrent ppocr-cls requests in batches larger than 1, each equal to its unbatched run', async () => {
    // The worker keeps up with requests arriving one by one and runs each at once (no delay when the
    // queue is idle). To see the batch former at work whatever this machine's speed, the queue is
    // paused while the 64 arrive, as an operator would pause it, then resumed: the worker finds 64
    // requests waiting and must batch them.
    const { store, close } = queueOf(app);
    await testQueueOf(store).pause('ppocr-cls', 1);
    const inputs = Array.from({ length: 64 }, randomInput);
    const responses = await Promise.all(
      inputs.map((data) => post('/v1/models/ppocr-cls/infer', clsBody(data))),
    );
    const ids = await Promise.all(
      responses.map(async (res) => {
        expect(res.status).toBe(202);
        return ((await res.json()) as { id: string }).id;
      }),
    );
    expect(await testQueueOf(store).counts('ppocr-cls', 1)).toEqual({
      waiting: 0,
      taken: 0,
      held: 64,
      delayed: 0,
    });
    expect(await testQueueOf(store).resume('ppocr-cls', 1)).toBe(64);
    await close();
    const records = await Promise.all(ids.map(finished));
    for (let i = 0; i < records.length; i++) {
      expect(records[i]?.status).toBe('succeeded');
      expectClose(records[i]?.outputs?.['softmax_0.tmp_0']?.data ?? [], await runDirect(inputs[i]!));
    }
    // ppocr-cls has maxBatchSize 32.
    const sizes = records.map((r) => r.batchSize ?? 0);
    expect(Math.max(...sizes)).toBeGreaterThan(1);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(32);

    const metrics = await (await fetch(`${app.metricsUrl}/metrics`)).text();
    // Label order is prom-client's (le, then default labels, then the metric's own): match by content.
    const series = (name: string) =>
      metrics.split('\n').filter((line) => line.startsWith(`${name}{`) && line.includes('model="ppocr-cls"'));
    const atMostOne = Number(
      series('inferq_batch_size_bucket')
        .find((line) => line.includes('le="1"'))
        ?.split(' ')
        .at(-1),
    );
    const total = Number(series('inferq_batch_size_count')[0]?.split(' ').at(-1));
    expect(Number.isFinite(total)).toBe(true);
    expect(total).toBeGreaterThan(atMostOne);
  });

  it('answers the examples/python MessagePack client (python3 msgpack + numpy)', async () => {
    for (const model of ['noop', 'ppocr-cls']) {
      const { stdout } = await run(
        '/usr/bin/python3',
        ['examples/python/client.py', '--url', app.url, '--model', model],
        {
          cwd: ROOT,
        },
      );
      const line = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
        status: string;
        outputs: Record<string, unknown>;
      };
      expect(line.status).toBe('succeeded');
      expect(Object.keys(line.outputs).length).toBeGreaterThan(0);
    }
  });

  it('answers malformed and mismatched input with the documented problem+json codes and keeps serving', async () => {
    const x = (dtype: string, shape: number[], data: unknown) =>
      JSON.stringify({ inputs: { x: { dtype, shape, data } } });
    const cases: [string, string | Uint8Array, string, number][] = [
      ['/v1/models/noop/infer', '{"inputs": {', 'application/json', 400],
      ['/v1/models/noop/infer', Uint8Array.from([0x82, 0xa6, 0x69, 0x6e]), 'application/msgpack', 400],
      ['/v1/models/no-such-model/infer', x('float32', [1, 4], [1, 2, 3, 4]), 'application/json', 404],
      ['/v1/models/noop/infer', x('int32', [1, 4], [1, 2, 3, 4]), 'application/json', 422],
      ['/v1/models/noop/infer', x('float32', [1, 4], [1, 2, 3]), 'application/json', 400],
      ['/v1/models/noop/infer', x('float32', [1, 4], [1, 2, 3, 4]), 'text/plain', 415],
    ];
    for (const [path, body, type, status] of cases) {
      const res = await post(path, body, type);
      expect(res.status, `${type} ${String(body).slice(0, 40)}`).toBe(status);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      const problem = (await res.json()) as { type: string; title: string; status: number; detail: string };
      expect(problem.status).toBe(status);
      expect(typeof problem.title).toBe('string');
      expect(typeof problem.detail).toBe('string');
      expect(typeof problem.type).toBe('string');
      // Still serving.
      const ok = await post('/v1/models/noop/infer', x('float32', [1, 4], [1, 2, 3, 4]), 'application/json', {
        prefer: 'wait=10',
      });
      expect(ok.status).toBe(200);
    }
  });
});
