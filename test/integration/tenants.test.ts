/**
 * Tenant isolation with API_KEYS set, over real HTTP and a real Redis: one tenant never sees another
 * tenant's request (GET, DELETE, events, ?wait all answer 404, exactly as for an unknown id), never
 * gets another tenant's result from the cache or by coalescing, and cannot disturb another
 * tenant's waits by publishing on its channels. docs/security.md states these guarantees.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newRequestId } from '@inferq/protocol';
import { loadModelRepository, type ModelRepository } from '@inferq/repository';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { writeAffineModel } from '../helpers/onnx-models.ts';
import { queueOf } from '../helpers/queue-backend.ts';
import { events } from '../helpers/sse.ts';
import {
  completeAsWorker,
  expectProblem,
  postJson,
  startTestApi,
  type TestApi,
} from '../helpers/test-api.ts';

const A = { authorization: 'Bearer key-of-acme' };
const B = { authorization: 'Bearer key-of-globex' };

let modelDir: string;
let repository: ModelRepository;
const open: TestApi[] = [];

async function startApi(): Promise<TestApi> {
  const api = await startTestApi({
    redisUrl: inject('redisUrl'),
    repository,
    modelRepository: modelDir,
    env: { API_KEYS: 'acme:key-of-acme,globex:key-of-globex' },
  });
  open.push(api);
  return api;
}

const body = (values = [1, 2, 3, 4]) => ({
  inputs: { x: { dtype: 'float32', shape: [1, 4], data: values } },
});

async function submit(
  api: TestApi,
  as: Record<string, string>,
  extra: Record<string, unknown> = {},
): Promise<{ status: number; record: Record<string, unknown> }> {
  const response = await postJson(api, '/v1/models/affine/infer', { ...body(), ...extra }, as);
  return { status: response.status, record: (await response.json()) as Record<string, unknown> };
}

async function getRecord(api: TestApi, id: string, as: Record<string, string>, query = '') {
  const response = await api.fetch(`/v1/requests/${id}${query}`, { headers: as });
  expect(response.status).toBe(200);
  return (await response.json()) as Record<string, unknown>;
}

beforeAll(async () => {
  modelDir = mkdtempSync(join(tmpdir(), 'inferq-tenants-'));
  writeAffineModel(join(modelDir, 'affine', '1', 'model.onnx'), { scale: 2, bias: 1 });
  repository = await loadModelRepository(modelDir);
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((api) => api.close()));
});

afterAll(() => {
  rmSync(modelDir, { recursive: true, force: true });
});

describe('with API_KEYS set', () => {
  it('answers 401 to a missing, malformed or wrong key, on every /v1 route', async () => {
    const api = await startApi();
    const id = newRequestId();
    const calls: [string, RequestInit][] = [
      ['/v1/models/affine/infer', { method: 'POST', body: JSON.stringify(body()) }],
      [`/v1/requests/${id}`, {}],
      [`/v1/requests/${id}`, { method: 'DELETE' }],
      [`/v1/requests/${id}/events`, {}],
      ['/v1/models', {}],
    ];
    for (const authorization of [
      undefined,
      'key-of-acme',
      'Basic a2V5LW9mLWFjbWU=',
      'Bearer key-of-acm',
      'Bearer key-of-acme2',
    ]) {
      for (const [path, init] of calls) {
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (authorization !== undefined) headers.authorization = authorization;
        const response = await api.fetch(path, { ...init, headers });
        expect(response.headers.get('www-authenticate')).toBe('Bearer');
        await expectProblem(response, 401);
      }
    }
    expect((await submit(api, A)).status).toBe(202);
  });

  it("hides one tenant's request from another: GET, ?wait, DELETE and events all answer 404", async () => {
    const api = await startApi();
    const { record: accepted } = await submit(api, A);
    const id = accepted.id as string;
    const unknown = newRequestId();
    for (const target of [id, unknown]) {
      // Exactly what an unknown id gets: nothing tells B that A's request exists.
      await expectProblem(
        await api.fetch(`/v1/requests/${target}`, { headers: B }),
        404,
        `no request with id '${target}'`,
      );
      await expectProblem(
        await api.fetch(`/v1/requests/${target}?wait=1`, { headers: B }),
        404,
        `no request with id '${target}'`,
      );
      await expectProblem(
        await api.fetch(`/v1/requests/${target}`, { method: 'DELETE', headers: B }),
        404,
        `no request with id '${target}'`,
      );
      await expectProblem(
        await api.fetch(`/v1/requests/${target}/events`, { headers: B }),
        404,
        `no request with id '${target}'`,
      );
    }
    // B's DELETE changed nothing: A's request is still queued, and A sees it.
    expect(await getRecord(api, id, A)).toMatchObject({ id, status: 'queued' });

    await completeAsWorker(api.store, id, 1, [3, 5, 7, 9]);
    await expectProblem(await api.fetch(`/v1/requests/${id}`, { headers: B }), 404);
    await expectProblem(await api.fetch(`/v1/requests/${id}/events`, { headers: B }), 404);
    expect(await getRecord(api, id, A, '?wait=1')).toMatchObject({
      status: 'succeeded',
      outputs: { y: { data: [3, 5, 7, 9] } },
    });
  });

  it("never gives one tenant another tenant's result, from the cache or by coalescing", async () => {
    const api = await startApi();
    // A's request is in flight; B sends the same input: B's runs on its own, it does not follow A's.
    const a1 = await submit(api, A);
    const b1 = await submit(api, B);
    expect(a1.status).toBe(202);
    expect(b1.status).toBe(202);
    expect(await getRecord(api, b1.record.id as string, B)).toEqual(
      expect.not.objectContaining({ coalesced: true }),
    );
    expect(await queueOf(api.store).depth('affine', 1)).toBe(2);
    // Within one tenant, the same input still coalesces.
    const a2 = await submit(api, A);
    expect(await getRecord(api, a2.record.id as string, A)).toMatchObject({ coalesced: true });

    // A's result is cached for A only.
    await completeAsWorker(api.store, a1.record.id as string, 1, [3, 5, 7, 9]);
    const aHit = await submit(api, A);
    expect(aHit.status).toBe(200);
    expect(aHit.record).toMatchObject({
      status: 'succeeded',
      cached: true,
      outputs: { y: { data: [3, 5, 7, 9] } },
    });
    // B, whose own request is still running, gets no cached answer from A's result: it follows its own.
    const b2 = await submit(api, B);
    expect(b2.status).toBe(202);
    expect(await getRecord(api, b2.record.id as string, B)).toMatchObject({
      status: 'queued',
      coalesced: true,
    });

    // B's own result (different here, so that it can be told apart) is what B gets from now on.
    await completeAsWorker(api.store, b1.record.id as string, 1, [30, 50, 70, 90]);
    const bHit = await submit(api, B);
    expect(bHit.status).toBe(200);
    expect(bHit.record).toMatchObject({ cached: true, outputs: { y: { data: [30, 50, 70, 90] } } });
    expect(await getRecord(api, b2.record.id as string, B)).toMatchObject({
      outputs: { y: { data: [30, 50, 70, 90] } },
    });
    expect((await submit(api, A)).record).toMatchObject({
      cached: true,
      outputs: { y: { data: [3, 5, 7, 9] } },
    });
  });

  it("cannot disturb another tenant's wait by naming its done channel as a callback channel", async () => {
    const api = await startApi();
    const victim = (await submit(api, A)).record.id as string;
    const stream = await api.fetch(`/v1/requests/${victim}/events`, { headers: A });
    const next = events(stream);
    expect(await next()).toEqual({ event: 'status', data: JSON.stringify({ id: victim, status: 'queued' }) });
    const longPoll = api.fetch(`/v1/requests/${victim}?wait=30`, { headers: A });

    // B knows the id (it should not, ids are unguessable; assume the worst) and has its own
    // request's completion published on A's channel.
    const forged = await submit(api, B, {
      inputs: { x: { dtype: 'float32', shape: [1, 4], data: [0, 0, 0, 0] } },
      callback: { channel: `${api.prefix}:done:${victim}` },
    });
    await completeAsWorker(api.store, forged.record.id as string, 1, [666, 666, 666, 666]);

    // A's stream and long-poll go on waiting, and end with A's real result when it comes.
    await completeAsWorker(api.store, victim, 1, [3, 5, 7, 9]);
    // The events are A's own, in order: its claim, then its result.
    expect(await next()).toEqual({
      event: 'status',
      data: JSON.stringify({ id: victim, status: 'running' }),
    });
    const terminal = await next();
    expect(terminal?.event).toBe('status');
    expect(JSON.parse(terminal?.data ?? '{}')).toMatchObject({
      id: victim,
      status: 'succeeded',
      outputs: { y: { data: [3, 5, 7, 9] } },
    });
    expect(await next()).toBeUndefined();
    const polled = await longPoll;
    expect(polled.status).toBe(200);
    expect(await polled.json()).toMatchObject({
      id: victim,
      status: 'succeeded',
      outputs: { y: { data: [3, 5, 7, 9] } },
    });
  });
});
