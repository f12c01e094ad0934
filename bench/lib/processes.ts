import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { temporaryDir } from './temporary.ts';

/** Characters of a child's output kept for the error message when it fails. */
const OUTPUT_TAIL_CHARS = 16_000;
const STOP_GRACE_MS = 20_000;

/** Raised when a contender cannot be started: its message carries the processes' last output. */
export class ContenderStartError extends Error {
  override readonly name = 'ContenderStartError';
}

const running = new Set<ManagedProcess>();

// Last resort for a run that dies without stopping what it started (an uncaught error): SIGTERM lets
// `inferq serve` stop the API, worker and Redis it started in their own process groups.
process.on('exit', () => {
  for (const child of running) child.signal('SIGTERM');
});

export interface ExitState {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A process started by the bench, with the tail of its output kept for error messages. */
export class ManagedProcess {
  readonly name: string;
  readonly exited: Promise<ExitState>;
  private readonly child: ChildProcess;
  private tail = '';
  private readonly listeners = new Set<() => void>();

  constructor(
    name: string,
    command: string,
    args: string[],
    options: { cwd?: string; env?: NodeJS.ProcessEnv },
  ) {
    this.name = name;
    this.child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(this);
    const onData = (chunk: Buffer): void => {
      this.tail = (this.tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
      for (const listener of this.listeners) listener();
    };
    this.child.stdout?.on('data', onData);
    this.child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) => {
      this.child.once('error', (error) => {
        this.tail += `\n(spawn failed: ${error.message})`;
        running.delete(this);
        resolve({ code: null, signal: null });
      });
      this.child.once('exit', (code, signal) => {
        running.delete(this);
        for (const listener of this.listeners) listener();
        resolve({ code, signal });
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  output(): string {
    return this.tail;
  }

  signal(name: NodeJS.Signals): void {
    if (this.alive) this.child.kill(name);
  }

  /** Resolves with the first match of `pattern` in the output; rejects if the process exits or time runs out. */
  waitForOutput(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(this.failure(`printed nothing matching ${pattern} within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      const check = (): void => {
        const match = pattern.exec(this.tail);
        if (match !== null) {
          clearTimeout(timer);
          this.listeners.delete(check);
          resolve(match);
        } else if (!this.alive) {
          clearTimeout(timer);
          this.listeners.delete(check);
          reject(this.failure('exited before it was ready'));
        }
      };
      this.listeners.add(check);
      check();
    });
  }

  failure(what: string): ContenderStartError {
    return new ContenderStartError(`${this.name} ${what}; its last output:\n${this.tail.trimEnd()}`);
  }

  /** SIGTERM, then SIGKILL if it is still there after the grace period. */
  async stop(graceMs = STOP_GRACE_MS): Promise<ExitState> {
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        reject(new Error('no port'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

export interface RedisServer {
  readonly url: string;
  readonly process: ManagedProcess;
  stop(): Promise<void>;
}

/**
 * A private redis-server on a free loopback port with a throw-away data folder, configured as
 * `inferq serve` configures its own (AOF, fsync every second, no eviction, no RDB snapshots).
 */
export async function startRedisServer(): Promise<RedisServer> {
  const port = await freePort();
  const dir = temporaryDir('inferq-bench-redis-');
  const server = new ManagedProcess(
    `redis-server :${port}`,
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir.path,
      '--appendonly',
      'yes',
      '--appendfsync',
      'everysec',
      '--maxmemory-policy',
      'noeviction',
      '--save',
      '',
    ],
    {},
  );
  const url = `redis://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    await server.stop();
    dir.remove();
  };
  try {
    await server.waitForOutput(/Ready to accept connections/, 15_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, process: server, stop };
}

/** A plain (non-subscriber) connection that gives up quickly instead of retrying forever. */
export function connectRedis(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: true, lazyConnect: false });
}

/** Polls `url` until `accept(status, body)` holds; rejects with the last answer after `timeoutMs`. */
export async function waitForHttp(
  url: string,
  accept: (status: number, body: string) => boolean,
  timeoutMs: number,
  alive: () => boolean = () => true,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline && alive()) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      const body = await response.text();
      if (accept(response.status, body)) return;
      last = `HTTP ${response.status}: ${body.slice(0, 500)}`;
    } catch (error: unknown) {
      last = error instanceof Error ? error.message : String(error);
    }
    await delay(100);
  }
  throw new ContenderStartError(`${url} not ready within ${timeoutMs / 1000} s (last answer: ${last})`);
}
