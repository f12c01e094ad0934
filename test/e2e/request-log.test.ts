/**
 * One log line per finished request, through the real processes (`inferq serve`: API + worker +
 * private Redis), read from their stdout (pino JSON): a leader and its coalesced follower, a cache
 * hit, a failed run, an expired and a cancelled request each get exactly one `request finished`
 * line, written by the process that ended it (docs/observability.md, "Tracing and request logs").
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RequestStore } from '@inferq/store';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POISON_INDEX, writePoisonModel } from '../faults/models.ts';
import { writeIdentityModel } from '../helpers/onnx-models.ts';
import { type AllInOne, startAllInOne } from '../helpers/processes.ts';
import { queueOf } from '../helpers/queue-backend.ts';
import { eventually } from '../helpers/webhook-receiver.ts';

interface FinishedLine {
  service: string;
  msg: string;
  id: string;
  model: string;
  version: number;
  status: string;
  cached: boolean;
  coalesced: boolean;
  queueMs: number;
  batchWaitMs: number;
  inferMs: number;
  totalMs: number;
  batchSize?: number;
  error?: string;
  traceId?: string;
}

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'expired']);

let models: string;
let app: AllInOne;
let redis: Redis;
let store: RequestStore;

beforeAll(async () => {
  models = mkdtempSync(join(tmpdir(), 'inferq-request-log-models-'));
  writeIdentityModel(join(models, 'echo', '1', 'model.onnx'), 'float32', [4]);
  writePoisonModel(join(models, 'poison', '1', 'model.onnx'));
  writeFileSync(join(models, 'poison', 'config.json'), JSON.stringify({ cache: { enabled: false } }));
  // One attempt: a failed run ends its request at once.
  app = await startAllInOne({ env: { MODEL_REPOSITORY: models, LOG_LEVEL: 'info', JOB_ATTEMPTS: '1' } });
  redis = new Redis(app.redis!.url);
  store = new RequestStore({ redis, prefix: '{inferq}', resultTtlSeconds: 86_400 });
});

afterAll(async () => {
  await queueOf(store)?.close();
  redis?.disconnect();
  await app?.stop();
  if (models !== undefined) rmSync(models, { recursive: true, force: true });
});

async function submit(
  model: string,
  inputs: Record<string, unknown>,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Promise<{ status: number; id: string }> {
  const response = await fetch(`${app.url}/v1/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ inputs, ...extra }),
  });
  const body = (await response.json()) as { id: string };
  return { status: response.status, id: body.id };
}

function echoInputs(values: number[]): Record<string, unknown> {
  return { x: { dtype: 'float32', shape: [1, 4], data: values } };
}

async function terminalStatus(id: string): Promise<string> {
  return eventually(async () => {
    const record = (await (await fetch(`${app.url}/v1/requests/${id}`)).json()) as { status: string };
    return TERMINAL.has(record.status) ? record.status : undefined;
  });
}

/** Every `request finished` line written so far, by either process. */
function finishedLines(): FinishedLine[] {
  return app
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{') && line.includes('"request finished"'))
    .map((line) => JSON.parse(line) as FinishedLine)
    .filter((line) => line.msg === 'request finished');
}

describe('request finished log lines', () => {
  it('come once per finished request, from the process that ended it', async () => {
    const traceId = randomBytes(16).toString('hex');
    const values = [Math.random(), 1, 2, 3];
    // Paused, the requests wait together: the second identical one coalesces onto the first, a
    // short deadline passes, and a cancel finds the request still queued.
    await queueOf(store).pause('echo', 1);
    const leader = await submit(
      'echo',
      echoInputs(values),
      {},
      {
        traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01`,
      },
    );
    const follower = await submit('echo', echoInputs(values));
    const expiring = await submit('echo', echoInputs([Math.random(), 0, 0, 0]), { timeoutMs: 50 });
    const cancelled = await submit('echo', echoInputs([Math.random(), 0, 0, 1]));
    for (const r of [leader, follower, expiring, cancelled]) expect(r.status).toBe(202);
    expect((await fetch(`${app.url}/v1/requests/${cancelled.id}`, { method: 'DELETE' })).status).toBe(200);
    expect(await terminalStatus(expiring.id)).toBe('expired');
    await queueOf(store).resume('echo', 1);
    expect(await terminalStatus(leader.id)).toBe('succeeded');
    expect(await terminalStatus(follower.id)).toBe('succeeded');

    const hit = await submit('echo', echoInputs(values));
    expect(hit.status).toBe(200);
    const failed = await submit('poison', { index: { dtype: 'int64', shape: [1], data: [POISON_INDEX] } });
    expect(await terminalStatus(failed.id)).toBe('failed');

    const ids = [leader, follower, expiring, cancelled, hit, failed].map((r) => r.id);
    const lines = await eventually(() => {
      const all = finishedLines();
      return ids.every((id) => all.some((line) => line.id === id)) ? all : undefined;
    });
    // Exactly one line per request, and none for anything else.
    expect(lines.map((line) => line.id).sort()).toEqual([...ids].sort());
    const lineOf = (id: string): FinishedLine => lines.find((line) => line.id === id)!;

    expect(lineOf(leader.id)).toMatchObject({
      service: 'worker',
      model: 'echo',
      version: 1,
      status: 'succeeded',
      cached: false,
      coalesced: false,
      batchSize: 1,
      traceId,
    });
    expect(lineOf(follower.id)).toMatchObject({
      service: 'worker',
      status: 'succeeded',
      cached: false,
      coalesced: true,
      batchSize: 1,
    });
    expect(lineOf(follower.id).traceId).toBeUndefined();
    expect(lineOf(hit.id)).toMatchObject({
      service: 'api',
      status: 'succeeded',
      cached: true,
      coalesced: false,
      totalMs: 0,
    });
    expect(lineOf(cancelled.id)).toMatchObject({ service: 'api', status: 'cancelled', error: 'cancelled' });
    expect(lineOf(expiring.id)).toMatchObject({ status: 'expired', error: 'expired', inferMs: 0 });
    expect(lineOf(failed.id)).toMatchObject({
      service: 'worker',
      model: 'poison',
      status: 'failed',
      error: 'inference_failed',
    });
    for (const line of lines) {
      for (const field of ['queueMs', 'batchWaitMs', 'inferMs', 'totalMs'] as const) {
        expect(line[field]).toBeGreaterThanOrEqual(0);
      }
      expect(line.queueMs).toBeLessThanOrEqual(line.totalMs);
    }
  });
});
