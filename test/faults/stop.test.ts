import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isProcessAlive, startAllInOne } from '../helpers/processes.ts';
import { freePort } from '../helpers/redis-server.ts';

// Item 11: whatever stops `inferq serve`, its children (redis-server, the API, the worker) stop,
// the ports are free again and the next start on the same ports and data folder succeeds.

const REPO_ROOT = resolve(import.meta.dirname, '..', '..');
const GONE_TIMEOUT_MS = 60_000;

interface Started {
  /** The pid we signal: npm's own, or serve's. */
  pid: number;
  children: { name: string; pid: number }[];
  redisPort: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output: () => string;
}

let modelRepository: string;
let dataDir: string;
let env: Record<string, string>;

beforeAll(async () => {
  // Only the tiny noop model: the test is about processes, not about loading models.
  modelRepository = mkdtempSync(join(tmpdir(), 'inferq-stop-models-'));
  cpSync(join(REPO_ROOT, 'models', 'demo', 'noop'), join(modelRepository, 'noop'), { recursive: true });
  env = {
    PORT: String(await freePort()),
    METRICS_PORT: String(await freePort()),
    MODEL_REPOSITORY: modelRepository,
    LOG_LEVEL: 'warn',
  };
});

afterAll(() => {
  rmSync(modelRepository, { recursive: true, force: true });
});

/** Runs `command` the way a process manager does (its own pid, no terminal) until `inferq ready:`. */
async function start(command: string, args: string[]): Promise<Started> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete childEnv.REDIS_URL;
  const child: ChildProcess = spawn(command, args, {
    cwd: REPO_ROOT,
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.once('exit', (code, signal) => done({ code, signal })),
  );
  await new Promise<void>((ready, fail) => {
    const onText = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      if (/^inferq ready: /m.test(output)) ready();
    };
    child.stdout?.on('data', onText);
    child.stderr?.on('data', onText);
    void exited.then(() => fail(new Error(`${command} exited before ready:\n${output}`)));
  });
  const redis = /^inferq: redis-server pid (\d+) listening on redis:\/\/127\.0\.0\.1:(\d+),/m.exec(output);
  const apps = /^inferq: api pid (\d+), worker pid (\d+)$/m.exec(output);
  if (redis === null || apps === null) throw new Error(`no pids in the output:\n${output}`);
  return {
    pid: child.pid as number,
    children: [
      { name: 'redis-server', pid: Number(redis[1]) },
      { name: 'api', pid: Number(apps[1]) },
      { name: 'worker', pid: Number(apps[2]) },
    ],
    redisPort: Number(redis[2]),
    exited,
    output: () => output,
  };
}

/** Polls until none of the children is alive; resolves with those still alive at the deadline. */
async function childrenLeft(started: Started): Promise<string[]> {
  const deadline = Date.now() + GONE_TIMEOUT_MS;
  for (;;) {
    const alive = started.children.filter((child) => isProcessAlive(child.pid)).map((c) => c.name);
    if (alive.length === 0 || Date.now() >= deadline) return alive;
    await new Promise((done) => setTimeout(done, 100));
  }
}

function canListen(port: number, host: string): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.once('error', () => done(false));
    server.listen(port, host, () => server.close(() => done(true)));
  });
}

/** Every port the stopped deployment used is free again. */
async function portsFree(started: Started): Promise<Record<string, boolean>> {
  return {
    PORT: await canListen(Number(env.PORT), '0.0.0.0'),
    METRICS_PORT: await canListen(Number(env.METRICS_PORT), '0.0.0.0'),
    redis: await canListen(started.redisPort, '127.0.0.1'),
  };
}

const allFree = { PORT: true, METRICS_PORT: true, redis: true };

/** The next start on the same ports and data folder gets ready and stops cleanly. */
async function nextStartSucceeds(): Promise<number> {
  const app = await startAllInOne({ env, dataDir });
  return app.stop();
}

describe('stopping `npm start` and `inferq serve` stops every child', () => {
  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'inferq-stop-data-'));
  });
  afterAll(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} to npm's own pid (as systemd, a container runtime or pm2 send it) drains and stops everything`, async () => {
      const started = await start('npm', ['start', '--', '--data-dir', dataDir]);
      process.kill(started.pid, signal);
      expect(await started.exited).toEqual({ code: 0, signal: null });
      expect(await childrenLeft(started)).toEqual([]);
      expect(await portsFree(started)).toEqual(allFree);
      expect(started.output()).toContain(`inferq: ${signal}: stopping`);
      expect(started.output()).not.toContain('did not stop within');
      expect(await nextStartSucceeds()).toBe(0);
    });
  }

  it("SIGKILL of `inferq serve`: the children notice their parent's death and stop", async () => {
    const started = await start(process.execPath, ['apps/cli/dist/main.js', 'serve', '--data-dir', dataDir]);
    process.kill(started.pid, 'SIGKILL');
    expect(await started.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(await childrenLeft(started)).toEqual([]);
    expect(await portsFree(started)).toEqual(allFree);
    expect(await nextStartSucceeds()).toBe(0);
  });
});
