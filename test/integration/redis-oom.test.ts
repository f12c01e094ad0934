/**
 * Redis full at `maxmemory` under `noeviction` (the policy inferq requires), over real HTTP: every
 * submit path answers 503 problem+json with Retry-After and leaves nothing behind, /readyz says
 * why, and the API serves again once memory is freed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packStandard } from '@inferq/protocol';
import { loadModelRepository, type ModelRepository } from '@inferq/repository';
import { createRedisConnection } from '@inferq/store';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeAffineModel } from '../helpers/onnx-models.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis-server.ts';
import {
  completeAsWorker,
  expectProblem,
  postJson,
  startTestApi,
  type TestApi,
} from '../helpers/test-api.ts';

let modelDir: string;
let repository: ModelRepository;
let redisServer: TestRedis;
let redis: Redis;
let api: TestApi;

const small = (values: number[]) => ({ inputs: { x: { dtype: 'float32', shape: [1, 4], data: values } } });
// Over INLINE_PAYLOAD_BYTES: its payload is written with a SET of its own before the submit script.
const large = {
  inputs: { x: { dtype: 'float32', shape: [400, 4], data: new Array(1600).fill(0.5) } },
  cache: false,
};

beforeAll(async () => {
  modelDir = mkdtempSync(join(tmpdir(), 'inferq-oom-'));
  writeAffineModel(join(modelDir, 'affine', '1', 'model.onnx'), { scale: 2, bias: 1 });
  repository = await loadModelRepository(modelDir);
  redisServer = await startTestRedis({ appendonly: false, maxmemory: '8mb' });
  redis = createRedisConnection(redisServer.url, 'command');
  api = await startTestApi({ redisUrl: redisServer.url, repository, modelRepository: modelDir });
});

afterAll(async () => {
  await api?.close();
  redis?.disconnect();
  await redisServer?.stop();
  rmSync(modelDir, { recursive: true, force: true });
});

/**
 * Writes 256 KiB values until Redis refuses one, then lowers maxmemory 1 MB below what is used: the
 * refused write's own buffer, freed after it, would otherwise bring Redis back just under the limit.
 */
async function fill(): Promise<number> {
  const chunk = Buffer.alloc(256 * 1024, 1);
  for (let i = 0; ; i++) {
    try {
      await redis.set(`filler:${i}`, chunk);
    } catch (error: unknown) {
      expect(String(error)).toMatch(/^ReplyError: OOM/);
      const used = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
      await redis.config('SET', 'maxmemory', String(used - 1024 * 1024));
      return i;
    }
  }
}

/** Every key the API's prefix has, with the length of each stream: what a submit would change. */
async function snapshot(): Promise<Record<string, number>> {
  const keys = (await redis.keys(`${api.prefix}*`)).sort();
  const state: Record<string, number> = {};
  for (const key of keys) {
    const type = await redis.type(key);
    state[key] = type === 'stream' ? await redis.xlen(key) : type === 'zset' ? await redis.zcard(key) : 1;
  }
  return state;
}

describe('Redis at maxmemory under noeviction', () => {
  it('answers every submit 503 with Retry-After, writes nothing, reports it in /readyz, and recovers', async () => {
    // Before: a finished request, so the cache-hit path is tried too.
    const first = await postJson(api, '/v1/models/affine/infer', small([1, 2, 3, 4]));
    expect(first.status).toBe(202);
    const { id } = (await first.json()) as { id: string };
    await completeAsWorker(api.store, id, 1, [3, 5, 7, 9]);

    const filled = await fill();
    expect(filled).toBeGreaterThan(0);
    const before = await snapshot();

    const attempts: [string, () => Promise<Response>][] = [
      ['a small JSON submit', () => postJson(api, '/v1/models/affine/infer', small([5, 6, 7, 8]))],
      ['a cache hit', () => postJson(api, '/v1/models/affine/infer', small([1, 2, 3, 4]))],
      ['a large payload', () => postJson(api, '/v1/models/affine/infer', large)],
      [
        'a MessagePack submit with an Idempotency-Key',
        () =>
          api.fetch('/v1/models/affine/infer', {
            method: 'POST',
            headers: { 'content-type': 'application/msgpack', 'idempotency-key': 'oom-1' },
            body: Buffer.from(
              packStandard({
                inputs: { x: { dtype: 'float32', shape: [1, 4], data: new Uint8Array(16) } },
              }),
            ),
          }),
      ],
      [
        'a bulk submit',
        () => postJson(api, '/v1/models/affine/infer:bulk', { requests: [small([9, 9, 9, 9]), large] }),
      ],
    ];
    for (const [name, attempt] of attempts) {
      const response = await attempt();
      expect(response.status, name).toBe(503);
      expect(response.headers.get('retry-after'), name).toBe('5');
      await expectProblem(response, 503, /Redis refuses new writes/);
    }
    // Nothing half-written: no record, payload, entry, queued or idempotency key appeared.
    expect(await snapshot()).toEqual(before);
    // Reads still work.
    expect((await api.fetch(`/v1/requests/${id}`)).status).toBe(200);

    const full = await api.fetch('/readyz');
    expect(full.status).toBe(503);
    expect(full.headers.get('retry-after')).toBe('5');
    const readiness = (await full.json()) as { redis: string; missing: string[] };
    expect(readiness.redis).toBe('refusing-writes');
    expect(readiness.missing).toContainEqual(expect.stringMatching(/^Redis refuses writes: OOM/));

    // Memory freed: served again, and readiness no longer names Redis.
    await redis.del(...Array.from({ length: filled }, (_, i) => `filler:${i}`));
    await redis.config('SET', 'maxmemory', '8mb');
    const again = await postJson(api, '/v1/models/affine/infer', large);
    expect(again.status).toBe(202);
    const after = (await (await api.fetch('/readyz')).json()) as { redis: string; missing: string[] };
    expect(after.redis).toBe('ok');
    expect(after.missing.some((reason) => reason.startsWith('Redis'))).toBe(false);
  });
});
