/**
 * Issue 12, "Redis Cluster proven": the whole pipeline (`inferq serve`'s API and worker processes,
 * REDIS_CLUSTER_NODES) on a real three-master Redis Cluster, then a failover of the master that owns
 * the prefix's slot while requests are in flight: every accepted request ends, with its exact result.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRedisConnection, type RedisConnection, RequestStore } from '@inferq/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeAffineModel } from '../helpers/onnx-models.ts';
import { type AllInOne, startAllInOne } from '../helpers/processes.ts';
import { queueOf } from '../helpers/queue-backend.ts';
import { startTestRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.ts';
import { events } from '../helpers/sse.ts';

const PREFIX = '{inferq}';
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'expired']);

let cluster: TestRedisCluster;
let serve: AllInOne;
let redis: RedisConnection;
let store: RequestStore;
let repo: string;

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** y = 2x + 1 of the affine model, for integer inputs: exact in float32. */
const expected = (x: number[]): number[] => x.map((v) => 2 * v + 1);

function bodyOf(x: number[], extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ inputs: { x: { dtype: 'float32', shape: [1, 4], data: x } }, ...extra });
}

async function submit(x: number[], extra: Record<string, unknown> = {}, headers = {}): Promise<Answer> {
  const response = await fetch(`${serve.url}/v1/models/affine/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: bodyOf(x, extra),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** The record once terminal (long-polls until it is). */
async function settledRecord(id: string): Promise<Record<string, unknown>> {
  for (;;) {
    const response = await fetch(`${serve.url}/v1/requests/${id}?wait=20`);
    expect(response.status).toBe(200);
    const record = (await response.json()) as Record<string, unknown>;
    if (TERMINAL.has(String(record.status))) return record;
  }
}

function outputOf(record: Record<string, unknown>): unknown {
  return (record.outputs as Record<string, { data: unknown }> | undefined)?.y?.data;
}

beforeAll(async () => {
  cluster = await startTestRedisCluster({ hashTag: PREFIX });
  repo = mkdtempSync(join(tmpdir(), 'inferq-cluster-models-'));
  writeAffineModel(join(repo, 'affine', '1', 'model.onnx'), { scale: 2, bias: 1 });
  serve = await startAllInOne({
    env: {
      REDIS_CLUSTER_NODES: cluster.nodesEnv,
      QUEUE_PREFIX: PREFIX,
      MODEL_REPOSITORY: repo,
      LOG_LEVEL: 'warn',
    },
  });
  // The test's own handle, as an operator's tool would have: pause and resume make requests wait.
  redis = createRedisConnection(cluster.target, 'worker');
  redis.on('error', () => undefined);
  store = new RequestStore({ redis, prefix: PREFIX, resultTtlSeconds: 3600 });
}, 120_000);

afterAll(async () => {
  await redis?.quit().catch(() => undefined);
  redis?.disconnect();
  await serve?.stop();
  await cluster?.stop();
  if (repo) rmSync(repo, { recursive: true, force: true });
}, 120_000);

describe('inferq on a Redis Cluster', () => {
  it('runs a request, answers a cache hit, coalesces a follower, cancels, expires, waits and streams', async () => {
    // Queued requests stay queued while the queue is paused, whatever the machine's speed.
    await queueOf(store).pause('affine', 1);
    const leader = await submit([1, 2, 3, 4]);
    expect(leader.status).toBe(202);
    const follower = await submit([1, 2, 3, 4]);
    expect(follower.status).toBe(202);
    const cancelled = await submit([5, 6, 7, 8]);
    const expiring = await submit([9, 10, 11, 12], { timeoutMs: 1 });
    const streamed = await submit([13, 14, 15, 16]);
    const stream = await fetch(`${serve.url}/v1/requests/${String(streamed.body.id)}/events`);
    expect(stream.status).toBe(200);
    const next = events(stream);

    const followerRecord = (await (
      await fetch(`${serve.url}/v1/requests/${String(follower.body.id)}`)
    ).json()) as Record<string, unknown>;
    expect(followerRecord).toMatchObject({ status: 'queued', coalesced: true });

    const cancel = await fetch(`${serve.url}/v1/requests/${String(cancelled.body.id)}`, { method: 'DELETE' });
    expect(cancel.status).toBe(200);
    expect(await cancel.json()).toMatchObject({ status: 'cancelled' });

    const expired = await settledRecord(String(expiring.body.id));
    expect(expired).toMatchObject({ status: 'expired', error: { code: 'expired' } });

    expect(await queueOf(store).resume('affine', 1)).toBe(2);
    const [leaderRecord, followerDone] = await Promise.all([
      settledRecord(String(leader.body.id)),
      settledRecord(String(follower.body.id)),
    ]);
    expect(leaderRecord).toMatchObject({ status: 'succeeded', cached: false });
    expect(outputOf(leaderRecord)).toEqual(expected([1, 2, 3, 4]));
    expect(followerDone).toMatchObject({ status: 'succeeded', coalesced: true });
    expect(outputOf(followerDone)).toEqual(expected([1, 2, 3, 4]));

    // SSE: status events, the last one the full record, then the stream ends.
    const seen: { event: string; data: string }[] = [];
    for (let event = await next(); event !== undefined; event = await next()) seen.push(event);
    const last = JSON.parse(seen.at(-1)?.data ?? '{}') as Record<string, unknown>;
    expect(last).toMatchObject({ id: streamed.body.id, status: 'succeeded' });
    expect(outputOf(last)).toEqual(expected([13, 14, 15, 16]));

    const hit = await submit([1, 2, 3, 4]);
    expect(hit.status).toBe(200);
    expect(hit.body).toMatchObject({ status: 'succeeded', cached: true });
    expect(outputOf(hit.body)).toEqual(expected([1, 2, 3, 4]));

    const waited = await submit([17, 18, 19, 20], {}, { prefer: 'wait=30' });
    expect(waited.status).toBe(200);
    expect(waited.body).toMatchObject({ status: 'succeeded', cached: false });
    expect(outputOf(waited.body)).toEqual(expected([17, 18, 19, 20]));
  });

  it('loses no accepted request across a failover of the prefix master, and serves again after it', async () => {
    const before = await cluster.masterPort();
    const accepted: { id: string; x: number[] }[] = [];
    let stop = false;
    let n = 100;
    // Clients submit without pause until the failover is over; each request a distinct input.
    const client = async (): Promise<void> => {
      while (!stop) {
        const x = [n, n + 1, n + 2, n + 3];
        n += 4;
        const answer = await submit(x, { cache: false }).catch(() => undefined);
        if (answer?.status === 202) accepted.push({ id: String(answer.body.id), x });
        else {
          // Only a 503 (Redis unreachable for a moment) may refuse a request; it says so.
          expect(answer?.status).toBe(503);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    };
    const clients = Array.from({ length: 4 }, () => client());
    while (accepted.length < 40) await new Promise((resolve) => setTimeout(resolve, 10));
    await cluster.failover();
    const atFailover = accepted.length;
    while (accepted.length < atFailover + 40) await new Promise((resolve) => setTimeout(resolve, 10));
    stop = true;
    await Promise.all(clients);

    expect(await cluster.masterPort()).not.toBe(before);
    const records = await Promise.all(accepted.map(({ id }) => settledRecord(id)));
    records.forEach((record, index) => {
      expect(record.status).toBe('succeeded');
      expect(outputOf(record)).toEqual(expected(accepted[index]!.x));
    });

    const after = await submit([1000, 1001, 1002, 1003], { cache: false }, { prefer: 'wait=30' });
    expect(after.status).toBe(200);
    expect(outputOf(after.body)).toEqual(expected([1000, 1001, 1002, 1003]));
  });
});
