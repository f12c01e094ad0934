/**
 * The API reads model signatures from the ONNX files and never loads onnxruntime (docs/models.md):
 * its process must not map the onnxruntime library, while a worker's does. Prints the API's RSS with
 * the demo repository (quoted in docs/models.md).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startTestRedis, type TestRedis } from '../helpers/redis-server.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
let redis: TestRedis;
const children: ChildProcess[] = [];

function start(script: string, env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [script], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'warn', REDIS_URL: redis.url, ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  children.push(child);
  return child;
}

async function until(url: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if ((await fetch(url).catch(() => undefined))?.status === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} never answered 200`);
}

/** Shared objects of the process whose path names onnxruntime. */
function onnxruntimeMappings(pid: number): string[] {
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n');
  return [
    ...new Set(
      maps.filter((line) => /onnxruntime/i.test(line)).map((line) => line.split(/\s+/).at(-1) ?? ''),
    ),
  ];
}

function rssMiB(pid: number): number {
  const kib = Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  return Math.round(kib / 1024);
}

beforeAll(async () => {
  redis = await startTestRedis();
});

afterAll(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  }
  await redis.stop();
});

describe('the API process and onnxruntime', () => {
  it('serves the demo repository without mapping onnxruntime, where a worker maps it', async () => {
    const port = await freePort();
    const metricsPort = await freePort();
    const api = start('apps/api/dist/main.js', { PORT: String(port) });
    const worker = start('apps/worker/dist/main.js', { METRICS_PORT: String(metricsPort) });
    await until(`http://127.0.0.1:${port}/readyz`);
    const described = (await (await fetch(`http://127.0.0.1:${port}/v1/models/ppocr-rec`)).json()) as {
      inputs: unknown;
    };
    expect(described.inputs).toEqual([{ name: 'x', dtype: 'float32', shape: [-1, 3, 48, -1] }]);
    expect(onnxruntimeMappings(api.pid!)).toEqual([]);
    expect(onnxruntimeMappings(worker.pid!).some((path) => /libonnxruntime\.so/.test(path ?? ''))).toBe(true);
    console.log(
      `API RSS with the demo repository: ${rssMiB(api.pid!)} MiB; worker: ${rssMiB(worker.pid!)} MiB`,
    );
  });
});
