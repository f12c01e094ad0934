/**
 * A failed run ends in a retry or a terminal state wherever the model runs. The same poison model
 * (an int64 Gather that throws for an index out of range) is served three times: on its own thread,
 * on the worker's main thread, and placed `auto` (sub-millisecond, so main). A main-thread batch runs
 * without the start script (the request is still `queued` when it fails), which once made its retry
 * a no-op that acknowledged the entry anyway: the request stayed `queued` for ever, its in-flight key
 * held identical requests, and it kept its MAX_QUEUE_DEPTH slot. Requests here arrive one by one,
 * without pausing the queue, so that each runs in a batch of its own as soon as it is taken.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestRedis, type TestRedis } from '../helpers/redis-server.ts';
import {
  type ApiProcess,
  type AppProcess,
  json,
  pollUntilTerminal,
  type RequestRecordJson,
  startApi,
  startWorker,
  submit,
} from './harness.ts';
import { POISON_INDEX, writePoisonModel } from './models.ts';

const PLACEMENTS = ['thread', 'main', 'auto'] as const;
const JOB_ATTEMPTS = 2;
const MAX_QUEUE_DEPTH = 3;

let redis: TestRedis;
let repository: string;
let api: ApiProcess;
const processes: AppProcess[] = [];

beforeAll(async () => {
  redis = await startTestRedis();
  repository = mkdtempSync(join(tmpdir(), 'inferq-poison-placements-'));
  for (const placement of PLACEMENTS) {
    writePoisonModel(join(repository, `poison-${placement}`, '1', 'model.onnx'));
    // The cache is on: identical requests coalesce onto the one in flight.
    writeFileSync(
      join(repository, `poison-${placement}`, 'config.json'),
      JSON.stringify({ placement, maxBatchSize: 16, maxBatchDelayMs: 2, intraOpThreads: 1 }),
    );
  }
  const env = { JOB_ATTEMPTS: String(JOB_ATTEMPTS), MAX_QUEUE_DEPTH: String(MAX_QUEUE_DEPTH) };
  api = await startApi({ redisUrl: redis.url, modelRepository: repository, env });
  processes.push(api);
  processes.push(await startWorker({ redisUrl: redis.url, modelRepository: repository, env }));
});

afterAll(async () => {
  for (const p of processes) await p.stop();
  await redis?.stop();
  if (repository) rmSync(repository, { recursive: true, force: true });
});

async function accepted(model: string, index: number): Promise<string> {
  const answer = await submit(api.base, model, {
    inputs: { index: { dtype: 'int64', shape: [1], data: [index] } },
  });
  expect(answer.status).toBe(202);
  return json<{ id: string }>(answer).id;
}

async function ended(ids: string[]): Promise<RequestRecordJson[]> {
  const records = await pollUntilTerminal(api.base, ids, 60_000);
  return ids.map((id) => records.get(id)!);
}

describe.each(PLACEMENTS)('a poison request on a model placed %s', (placement) => {
  const model = `poison-${placement}`;

  it('ends failed after its retries, and frees its in-flight key and its queue slot', async () => {
    // As many poison leaders as the queue holds, each with an identical follower.
    const poison = [POISON_INDEX, POISON_INDEX + 1, POISON_INDEX + 2];
    const leaders: string[] = [];
    const followers: string[] = [];
    for (const index of poison) {
      leaders.push(await accepted(model, index));
      followers.push(await accepted(model, index));
    }
    for (const record of await ended([...leaders, ...followers])) {
      expect(record).toMatchObject({ status: 'failed', error: { code: 'inference_failed' } });
      expect(record.error?.message).toMatch(/out of data bounds/);
    }
    // Every slot is free again: a full queue's worth of good requests is accepted and served.
    const good = [await accepted(model, 1), await accepted(model, 2), await accepted(model, 3)];
    expect((await ended(good)).map((r) => [r.status, r.outputs?.y?.data])).toEqual([
      ['succeeded', [1, 1.5]],
      ['succeeded', [2, 2.5]],
      ['succeeded', [3, 3.5]],
    ]);
    // The in-flight key was released: the same poison input runs (and fails) again, it does not
    // coalesce onto a request that will never end.
    const again = await accepted(model, POISON_INDEX);
    expect(leaders).not.toContain(again);
    expect((await ended([again]))[0]).toMatchObject({
      status: 'failed',
      error: { code: 'inference_failed' },
    });
  });
});
