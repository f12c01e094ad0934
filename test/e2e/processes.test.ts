/**
 * API and worker as separate processes on a Redis of the test's own (API.md "API only" and "worker
 * only"), and a plain `redis-cli SUBSCRIBE` on the done channel: the completion message it receives
 * must be standard MessagePack, readable by Python's msgpack.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { decodeCompletionMessage } from '@inferq/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startTestRedis, type TestRedis } from '../helpers/redis-server.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
const execFileAsync = promisify(execFile);

let redis: TestRedis;
let api: ChildProcess;
let base: string;
const children: ChildProcess[] = [];

function startNode(script: string, env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [script], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  children.push(child);
  return child;
}

async function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  return exited;
}

async function waitHttp(url: string, status: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    try {
      if ((await fetch(url)).status === status) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} never answered ${status}`);
}

beforeAll(async () => {
  redis = await startTestRedis();
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  // A scale-from-zero deployment: requests wait in Redis until a worker starts.
  api = startNode('apps/api/dist/main.js', {
    REDIS_URL: redis.url,
    PORT: String(port),
    WAIT_FOR_CAPACITY: 'true',
  });
  await waitHttp(`${base}/healthz`, 200);
});

afterAll(async () => {
  for (const child of children) await stop(child);
  await redis.stop();
});

describe('separate API and worker processes', () => {
  it('refuses requests no live worker can serve with 503 unless WAIT_FOR_CAPACITY is set', async () => {
    const port = await freePort();
    const strict = startNode('apps/api/dist/main.js', { REDIS_URL: redis.url, PORT: String(port) });
    await waitHttp(`http://127.0.0.1:${port}/healthz`, 200);
    const res = await fetch(`http://127.0.0.1:${port}/v1/models/noop/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: { x: { dtype: 'float32', shape: [1, 4], data: [1, 2, 3, 4] } } }),
    });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(await res.json()).toMatchObject({
      type: 'https://inferq.dev/problems/model-unavailable',
      detail: "model 'noop' version 1 is unavailable: no live worker serves this version",
    });
    const described = (await (await fetch(`http://127.0.0.1:${port}/v1/models/noop`)).json()) as {
      versionStates: unknown[];
    };
    expect(described.versionStates).toEqual([
      {
        version: 1,
        state: 'unavailable',
        reason: 'no live worker serves this version',
        liveWorkers: 0,
        providers: [],
        accepting: false,
      },
    ]);
    expect(await stop(strict)).toBe(0);
  });

  it('queues without a worker, then a worker completes it and redis-cli receives standard MessagePack', async () => {
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    const res = await fetch(`${base}/v1/models/noop/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: { x: { dtype: 'float32', shape: [1, 4], data: [1.5, -2, 3, 4] } } }),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const channel = `{inferq}:done:${id}`;

    const cli = spawn('redis-cli', ['-p', String(redis.port), 'SUBSCRIBE', channel], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(cli);
    let out = Buffer.alloc(0);
    const header = Buffer.from(`message\n${channel}\n`);
    const message = new Promise<Buffer>((resolveMessage) => {
      cli.stdout?.on('data', (chunk: Buffer) => {
        out = Buffer.concat([out, chunk]);
        const at = out.indexOf(header);
        // redis-cli prints the payload raw, then a newline; the payload ends where the output does.
        if (at >= 0 && out.length > at + header.length && out.at(-1) === 0x0a) {
          resolveMessage(out.subarray(at + header.length, out.length - 1));
        }
      });
    });
    // redis-cli announces the subscription (subscribe, channel, 1) before any message.
    while (!out.includes(Buffer.from(`subscribe\n${channel}\n1\n`)))
      await new Promise((r) => setTimeout(r, 20));

    const worker = startNode('apps/worker/dist/main.js', {
      REDIS_URL: redis.url,
      METRICS_PORT: String(await freePort()),
    });
    const payload = await message;

    const decoded = decodeCompletionMessage(payload);
    expect(decoded).toMatchObject({ id, status: 'succeeded', model: 'noop', version: 1, cached: false });
    expect(Array.from(decoded.outputs?.y?.data as Float32Array)).toEqual([1.5, -2, 3, 4]);

    const python = `
import sys, msgpack, numpy as np
m = msgpack.unpackb(sys.stdin.buffer.read(), raw=False, strict_map_key=True)
y = m["outputs"]["y"]
print(m["id"], m["status"], list(np.frombuffer(y["data"], dtype=y["dtype"]).reshape(y["shape"]).ravel()))
`;
    const py = spawn('/usr/bin/python3', ['-c', python], { stdio: ['pipe', 'pipe', 'inherit'] });
    py.stdin?.end(payload);
    let pyOut = '';
    py.stdout?.on('data', (c: Buffer) => {
      pyOut += c.toString();
    });
    const code = await new Promise<number | null>((r) => py.once('exit', r));
    expect(code).toBe(0);
    expect(pyOut.trim()).toMatch(
      new RegExp(
        `^${id} succeeded \\[(np\\.float32\\()?1\\.5\\)?, (np\\.float32\\()?-2\\.0\\)?, (np\\.float32\\()?3\\.0\\)?, (np\\.float32\\()?4\\.0\\)?\\]$`,
      ),
    );

    await waitHttp(`${base}/readyz`, 200);
    expect(await stop(worker)).toBe(0);
    await stop(cli);
  });

  it('`inferq queue pause` holds new requests in Redis and `inferq queue resume` enqueues them', async () => {
    const queueCli = async (...args: string[]): Promise<Record<string, unknown>> => {
      const { stdout } = await execFileAsync(process.execPath, ['apps/cli/dist/main.js', 'queue', ...args], {
        cwd: ROOT,
        env: { ...process.env, REDIS_URL: redis.url },
      });
      return JSON.parse(stdout) as Record<string, unknown>;
    };
    const empty = { waiting: 0, taken: 0, held: 0, delayed: 0 };
    expect(await queueCli('pause', 'noop')).toEqual({
      queue: 'noop.v1',
      model: 'noop',
      version: 1,
      paused: true,
      ...empty,
    });
    const res = await fetch(`${base}/v1/models/noop/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: { x: { dtype: 'float32', shape: [1, 4], data: [7, 7, 7, 7] } } }),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    expect(await queueCli('status', 'noop')).toMatchObject({ paused: true, waiting: 0, held: 1 });
    expect(await queueCli('resume', 'noop')).toMatchObject({
      paused: false,
      waiting: 1,
      held: 0,
      resumed: 1,
    });
    // No worker runs now: it waits in the queue, still cancellable.
    expect((await fetch(`${base}/v1/requests/${id}`, { method: 'DELETE' })).status).toBe(200);
    expect(await queueCli('status', 'noop', '--model-version', '1')).toMatchObject({
      paused: false,
      ...empty,
    });
  });

  it('exits 0 on SIGTERM', async () => {
    expect(await stop(api)).toBe(0);
    const { stdout } = await execFileAsync('redis-cli', ['-p', String(redis.port), 'PING']);
    expect(stdout.trim()).toBe('PONG');
  });
});
