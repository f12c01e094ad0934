import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from './redis-server.ts';

const REPO_ROOT = resolve(import.meta.dirname, '..', '..');
const READY_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 60_000;

export interface AllInOne {
  /** Base URL of the API, as printed on the `inferq ready:` line. */
  readonly url: string;
  readonly port: number;
  /** The `inferq serve` process. */
  readonly pid: number;
  /** Base URL of the worker's own `/metrics` and `/healthz` (its METRICS_PORT). */
  readonly metricsUrl: string;
  readonly metricsPort: number;
  /** The private redis-server the CLI started (absent when the test passed REDIS_URL). */
  readonly redis: { pid: number; url: string } | undefined;
  /** SIGTERM, then the exit code (128 + signal number if it died of a signal). Safe to call twice. */
  stop(): Promise<number>;
  /** Everything the process wrote so far, stdout and stderr interleaved. */
  output(): string;
}

/**
 * Runs what the README's `npm start` runs, minus the rebuild (the suite's pretest already built):
 * `node apps/cli/dist/main.js serve`, on free ports, with its Redis data in a fresh temporary folder
 * so that tests never share the developer's `.data/redis`. Resolves once it prints `inferq ready:`.
 */
export async function startAllInOne(
  options: {
    env?: Record<string, string | undefined>;
    /** The private Redis's folder, kept afterwards (default: a fresh one, removed at exit). */
    dataDir?: string;
  } = {},
): Promise<AllInOne> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'inferq-serve-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(await freePort()),
    METRICS_PORT: String(await freePort()),
  };
  // A REDIS_URL from the developer's shell would skip the private Redis this helper exists to test.
  delete env.REDIS_URL;
  Object.assign(env, options.env);
  for (const [name, value] of Object.entries(env)) if (value === undefined) delete env[name];
  const port = Number(env.PORT);
  const metricsPort = Number(env.METRICS_PORT);

  const child = spawn(process.execPath, ['apps/cli/dist/main.js', 'serve', '--data-dir', dataDir], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number>((resolveExit) => {
    child.once('exit', (code, signal) => {
      if (options.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
      resolveExit(code ?? 128 + (signal === null ? 0 : constants.signals[signal]));
    });
  });
  const ready = new Promise<{ url: string; redis: AllInOne['redis'] }>((resolveReady, rejectReady) => {
    let redis: AllInOne['redis'];
    let announced = false;
    const onText = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      // Scanning ends at the ready line: a request log line per request would make it quadratic.
      if (announced) return;
      const redisLine = /^inferq: redis-server pid (\d+) listening on (\S+),/m.exec(output);
      if (redisLine !== null) redis = { pid: Number(redisLine[1]), url: redisLine[2] as string };
      const readyLine = /^inferq ready: (\S+)$/m.exec(output);
      if (readyLine === null) return;
      announced = true;
      resolveReady({ url: readyLine[1] as string, redis });
    };
    child.stdout.on('data', onText);
    child.stderr.on('data', onText);
    void exited.then((code) =>
      rejectReady(new Error(`inferq serve exited with ${code} before ready:\n${output}`)),
    );
  });

  const stop = async (): Promise<number> => {
    signal(child, 'SIGTERM');
    const timer = setTimeout(() => signal(child, 'SIGKILL'), STOP_TIMEOUT_MS);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };

  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rejectTimeout) => {
    timer = setTimeout(
      () => rejectTimeout(new Error(`inferq serve not ready within ${READY_TIMEOUT_MS} ms:\n${output}`)),
      READY_TIMEOUT_MS,
    );
  });
  try {
    const { url, redis } = await Promise.race([ready, timeout]);
    return {
      url,
      port,
      pid: child.pid as number,
      metricsUrl: `http://127.0.0.1:${metricsPort}`,
      metricsPort,
      redis,
      stop,
      output: () => output,
    };
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

function signal(child: ChildProcess, name: NodeJS.Signals): void {
  if (child.exitCode === null && child.signalCode === null) child.kill(name);
}

/** True while a process with this pid exists. */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
