/**
 * Bull Board at /admin/queues (issue 12 item 3): on the bullmq backend only, for admins only. Each
 * API here sets QUEUE_BACKEND itself, so the file tests the same in every project.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelRepository } from '@inferq/repository';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { writeAffineModel } from '../helpers/onnx-models.ts';
import { expectProblem, postJson, startTestApi, type TestApi } from '../helpers/test-api.ts';

const ADMIN_KEY = 'admin-key-0123456789abcdef';
const OPS_KEY = 'ops:key:with:colons';
const ACME_KEY = 'acme-key';
const AUTH_ENV = {
  API_KEYS: `ops:${OPS_KEY},acme:${ACME_KEY}`,
  ADMIN_KEY,
  ADMIN_TENANTS: 'ops',
};

let modelDir: string;
const open: TestApi[] = [];

async function startApi(env: Record<string, string>): Promise<TestApi> {
  const api = await startTestApi({
    redisUrl: inject('redisUrl'),
    repository: await loadModelRepository(modelDir),
    modelRepository: modelDir,
    env,
  });
  open.push(api);
  return api;
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const basic = (user: string, password: string) => ({
  authorization: `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`,
});

/** A request that waits in the version's queue (`first`: distinct inputs, so none coalesces). */
async function submit(api: TestApi, version: number, first = 1): Promise<void> {
  const response = await postJson(
    api,
    `/v1/models/affine/versions/${version}/infer`,
    { inputs: { x: { dtype: 'float32', shape: [1, 4], data: [first, 2, 3, 4] } } },
    bearer(ACME_KEY),
  );
  expect(response.status).toBe(202);
}

interface BoardQueue {
  name: string;
  counts: Record<string, number>;
  readOnlyMode: boolean;
}

async function boardQueues(api: TestApi): Promise<BoardQueue[]> {
  const response = await api.fetch('/admin/queues/api/queues', { headers: bearer(ADMIN_KEY) });
  expect(response.status).toBe(200);
  return ((await response.json()) as { queues: BoardQueue[] }).queues;
}

beforeAll(() => {
  modelDir = mkdtempSync(join(tmpdir(), 'inferq-board-models-'));
  writeAffineModel(join(modelDir, 'affine', '1', 'model.onnx'), { scale: 3, bias: 0 });
  writeAffineModel(join(modelDir, 'affine', '2', 'model.onnx'), { scale: 2, bias: 1 });
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((api) => api.close()));
});

afterAll(() => {
  rmSync(modelDir, { recursive: true, force: true });
});

describe('Bull Board at /admin/queues with QUEUE_BACKEND=bullmq', () => {
  it('is refused without an admin credential: 401 with challenges, 403 for a tenant key', async () => {
    const api = await startApi({ ...AUTH_ENV, QUEUE_BACKEND: 'bullmq' });
    await submit(api, 2);

    const anonymous = await api.fetch('/admin/queues');
    expect(anonymous.headers.get('www-authenticate')).toBe(
      'Bearer, Basic realm="inferq admin", charset="UTF-8"',
    );
    await expectProblem(anonymous, 401, /admin key/);
    for (const headers of [
      bearer('wrong-key-0123456789'),
      basic('admin', 'wrong-key-0123456789'),
      basic('admin', ''),
      { authorization: 'Basic not base64!' },
      { authorization: `Token ${ADMIN_KEY}` },
    ]) {
      const response = await api.fetch('/admin/queues', { headers });
      expect(response.headers.get('www-authenticate')).toMatch(/^Bearer, Basic /);
      await expectProblem(response, 401);
    }
    // Every path under the board, its JSON API and static files too.
    for (const path of ['/admin/queues/api/queues', '/admin/queues/static/favicon-32x32.png']) {
      await expectProblem(await api.fetch(path), 401);
    }

    for (const headers of [bearer(ACME_KEY), basic('acme', ACME_KEY)]) {
      const response = await api.fetch('/admin/queues', { headers });
      expect(response.headers.get('www-authenticate')).toBeNull();
      await expectProblem(response, 403, /not an admin tenant/);
    }
    // The admin key is no tenant's key: /v1 refuses it.
    await expectProblem(await api.fetch('/v1/models', { headers: bearer(ADMIN_KEY) }), 401);
  });

  it('serves the board to the admin key (Bearer or Basic) and to an admin tenant', async () => {
    const api = await startApi({ ...AUTH_ENV, QUEUE_BACKEND: 'bullmq' });
    await submit(api, 2, 1);
    await submit(api, 2, 2);
    await submit(api, 1, 1);

    for (const headers of [
      bearer(ADMIN_KEY),
      basic('anyone', ADMIN_KEY),
      bearer(OPS_KEY),
      basic('ops', OPS_KEY),
    ]) {
      const response = await api.fetch('/admin/queues', { headers });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/html/);
      expect(response.headers.get('x-powered-by')).toBeNull();
      const html = await response.text();
      expect(html).toContain('inferq queues');
      expect(html).toContain('<base href="/admin/queues/" />');
    }
    // The UI's static files resolve (from @bull-board/ui in node_modules).
    const favicon = await api.fetch('/admin/queues/static/favicon-32x32.png', { headers: bearer(ADMIN_KEY) });
    expect(favicon.status).toBe(200);
    expect(favicon.headers.get('content-type')).toBe('image/png');

    const queues = await boardQueues(api);
    expect(queues.map((q) => q.name).sort()).toEqual(['affine.v1', 'affine.v2']);
    const byName = new Map(queues.map((q) => [q.name, q]));
    expect(byName.get('affine.v2')?.counts).toMatchObject({ waiting: 2, active: 0 });
    expect(byName.get('affine.v1')?.counts).toMatchObject({ waiting: 1, active: 0 });
    expect(queues.every((q) => q.readOnlyMode)).toBe(true);

    // Read-only: a job is half of a request, so the board may not remove or pause anything.
    const pause = await api.fetch('/admin/queues/api/queues/affine.v2/pause', {
      method: 'PUT',
      headers: bearer(ADMIN_KEY),
    });
    expect(pause.status).toBe(405);
    expect((await boardQueues(api)).find((q) => q.name === 'affine.v2')?.counts).toMatchObject({
      waiting: 2,
    });
  });

  it("follows the catalogue's versions as they appear and are retired", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'inferq-board-reload-'));
    try {
      writeAffineModel(join(dir, 'affine', '1', 'model.onnx'), { scale: 3, bias: 0 });
      const api = await startTestApi({
        redisUrl: inject('redisUrl'),
        repository: await loadModelRepository(dir),
        modelRepository: dir,
        env: { ADMIN_KEY, QUEUE_BACKEND: 'bullmq' },
      });
      open.push(api);
      expect((await boardQueues(api)).map((q) => q.name)).toEqual(['affine.v1']);

      writeAffineModel(join(dir, 'affine', '2', 'model.onnx'), { scale: 2, bias: 1 });
      writeFileSync(
        join(dir, 'affine', 'config.json'),
        JSON.stringify({ versionPolicy: { specific: { versions: [2] } } }),
      );
      api.catalog.setRepository(await loadModelRepository(dir));
      expect((await boardQueues(api)).map((q) => q.name)).toEqual(['affine.v2']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is refused to everyone when neither ADMIN_KEY nor ADMIN_TENANTS is set', async () => {
    const api = await startApi({ API_KEYS: `ops:${OPS_KEY}`, QUEUE_BACKEND: 'bullmq' });
    await expectProblem(await api.fetch('/admin/queues', { headers: bearer(OPS_KEY) }), 403, /ADMIN_KEY/);
    await expectProblem(await api.fetch('/admin/queues'), 403, /ADMIN_KEY/);
  });
});

describe('/admin/queues with QUEUE_BACKEND=streams', () => {
  it('is an unknown route: 404, whatever the credential', async () => {
    const api = await startApi({ ...AUTH_ENV, QUEUE_BACKEND: 'streams' });
    await submit(api, 2);
    for (const path of ['/admin/queues', '/admin/queues/api/queues']) {
      await expectProblem(await api.fetch(path), 404, /no route/);
      await expectProblem(await api.fetch(path, { headers: bearer(ADMIN_KEY) }), 404, /no route/);
    }
  });
});
