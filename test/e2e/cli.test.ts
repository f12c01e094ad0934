import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AllInOne, startAllInOne } from '../helpers/processes.ts';

// Items 13, 14 and 18: `npx inferq` is a real command that finds a running serve by itself, the
// client SDK imports from plain Node, and npm prints no warnings about the project's config.

const REPO_ROOT = resolve(import.meta.dirname, '..', '..');

function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  // What a user's shell has: no REDIS_URL, no npm lifecycle variables from the test runner.
  for (const name of Object.keys(childEnv))
    if (name === 'REDIS_URL' || name === 'INFERQ_URL' || name.startsWith('npm_')) delete childEnv[name];
  return new Promise((done) => {
    const child = spawn(command, args, { cwd: REPO_ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.once('close', (code) => done({ code, stdout, stderr }));
  });
}

describe('npx inferq, against a running inferq serve', () => {
  let app: AllInOne;
  let dataDir: string;

  beforeAll(async () => {
    app = await startAllInOne();
    const match = /data in (\S+);/.exec(app.output());
    if (match === null) throw new Error(`no data folder in:\n${app.output()}`);
    dataDir = match[1] as string;
  });

  afterAll(async () => {
    await app?.stop();
  });

  it('is a command of the repository, and npm warns about nothing', async () => {
    const help = await run('npx', ['inferq', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: inferq /);
    expect(help.stderr).toBe('');
  });

  it("queue pause, without QUEUE_BACKEND, pauses the queues of serve's own backend", async () => {
    // The user's shell does not say which backend serve runs (the suite runs it on both): the CLI
    // learns it from serve's state file, so the pause holds what serve's workers would take.
    const queue = (action: string) =>
      run('node', ['apps/cli/dist/main.js', 'queue', action, 'noop', '--data-dir', dataDir], {
        QUEUE_BACKEND: undefined,
      });
    expect((await queue('pause')).code).toBe(0);
    try {
      const submitted = await fetch(`${app.url}/v1/models/noop/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ inputs: { x: { dtype: 'float32', shape: [1, 4], data: [1, 2, 3, 4] } } }),
      });
      const { id } = (await submitted.json()) as { id: string };
      // Long enough for a worker to have run it, were the queue not paused.
      await new Promise((done) => setTimeout(done, 1_000));
      const record = (await (await fetch(`${app.url}/v1/requests/${id}`)).json()) as { status: string };
      expect(record.status).toBe('queued');
      expect(JSON.parse((await queue('status')).stdout)).toMatchObject({ paused: true, held: 1 });
    } finally {
      expect((await queue('resume')).code).toBe(0);
    }
  });

  it("models lists the deployment's models and pipelines with their states, from serve's API", async () => {
    const listed = await run('node', ['apps/cli/dist/main.js', 'models', '--data-dir', dataDir, '--json']);
    expect(listed.stderr).toBe('');
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual(
      ['noop', 'ocr', 'ppocr-cls', 'ppocr-det', 'ppocr-rec'].map((model) => ({
        model,
        version: 1,
        state: 'ready',
        default: true,
        liveWorkers: 1,
        reason: '',
      })),
    );
    const table = await run('node', ['apps/cli/dist/main.js', 'models', '--data-dir', dataDir]);
    expect(table.stdout.split('\n')[0]).toBe('MODEL      VERSION      STATE  WORKERS  REASON');
  });

  it("queue status finds serve's private Redis without REDIS_URL", async () => {
    const status = await run('npx', ['inferq', 'queue', 'status', 'noop', '--data-dir', dataDir]);
    expect(status.stderr).toBe('');
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({
      queue: 'noop.v1',
      model: 'noop',
      version: 1,
      paused: false,
    });
  });

  it('queue status and pause of an unknown model exit 1 naming it, and pause nothing', async () => {
    for (const action of ['status', 'pause']) {
      const result = await run('npx', ['inferq', 'queue', action, 'nosuch', '--data-dir', dataDir]);
      expect(result).toEqual({
        code: 1,
        stdout: '',
        stderr: `inferq: unknown model "nosuch": not in the model repository (${resolve(REPO_ROOT, 'models/demo')}) and no live worker serves it\n`,
      });
    }
  });

  it("submit finds serve's API without --url", async () => {
    const result = await run('npx', ['inferq', 'submit', 'noop', '--zeros', '--data-dir', dataDir]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      model: 'noop',
      status: 'succeeded',
      outputs: { y: { dtype: 'float32', shape: [1, 4], data: [0, 0, 0, 0] } },
    });
  });

  it("the client SDK imports from plain Node ESM and runs its README's examples", async () => {
    const script = `
      import { InferqClient, InferqHttpError } from '@inferq/client';
      const client = new InferqClient({ baseUrl: ${JSON.stringify(app.url)}, apiKey: process.env.INFERQ_API_KEY });
      const x = { dtype: 'float32', shape: [1, 4], data: new Float32Array([1, 2, 3, 4]) };
      const record = await client.infer('noop', { inputs: { x } }, { timeoutMs: 30_000 });
      const { id } = await client.submit('noop', { inputs: { x: { ...x, data: new Float32Array([5, 6, 7, 8]) } } }, { idempotencyKey: 'order-42' });
      const statuses = [];
      for await (const event of client.events(id)) statuses.push(event.status);
      const waited = await client.waitFor(id, 60_000);
      let notFound;
      try { await client.model('nosuch'); } catch (error) { notFound = error instanceof InferqHttpError ? error.status : String(error); }
      console.log(JSON.stringify({
        infer: [record.status, Array.from(record.outputs.y.data)],
        events: statuses.at(-1),
        waited: [waited.status, Array.from(waited.outputs.y.data)],
        notFound,
      }));`;
    const result = await run(process.execPath, ['--input-type=module', '-e', script]);
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toEqual({
      infer: ['succeeded', [1, 2, 3, 4]],
      events: 'succeeded',
      waited: ['succeeded', [5, 6, 7, 8]],
      notFound: 404,
    });
  });
});
