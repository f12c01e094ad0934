import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A redis-server owned by a test: on a free port, with its own data folder, killable and restartable. */
export interface TestRedis {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** SIGKILL, as a crash would. */
  kill(): Promise<void>;
  /** Start again on the same port and folder (AOF replays what was written). */
  restart(): Promise<void>;
  /** Stop and remove the data folder. */
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      if (address === null || typeof address === 'string') throw new Error('no port');
      srv.close(() => resolve(address.port));
    });
  });
}

export interface TestRedisOptions {
  /** AOF on (default) or off. */
  appendonly?: boolean;
  /** `always` fsyncs every write before replying (the setting R2 relies on); default `everysec`. */
  appendfsync?: 'always' | 'everysec';
  /** `maxmemory` (e.g. `8mb`); default none. The policy is always `noeviction`, as inferq requires. */
  maxmemory?: string;
}

/**
 * The arguments every test redis-server shares: loopback only, its own folder, AOF on and no RDB
 * snapshots, and `noeviction` (the policy inferq requires).
 */
export function loopbackServerArgs(port: number, dir: string): string[] {
  return [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--maxmemory-policy',
    'noeviction',
  ];
}

export async function startTestRedis(options: TestRedisOptions = {}): Promise<TestRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'inferq-redis-'));
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    child = spawn(
      'redis-server',
      [
        ...loopbackServerArgs(port, dir),
        '--appendonly',
        options.appendonly === false ? 'no' : 'yes',
        '--appendfsync',
        options.appendfsync ?? 'everysec',
        ...(options.maxmemory === undefined ? [] : ['--maxmemory', options.maxmemory]),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const onData = (chunk: Buffer): void => {
        out += chunk.toString();
        if (out.includes('Ready to accept connections')) resolve();
      };
      child?.stdout?.on('data', onData);
      child?.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${out}`)));
      child?.once('error', reject);
    });
  };
  const waitExit = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill(signal);
    });
  };

  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    kill: () => waitExit('SIGKILL'),
    restart: async () => {
      await waitExit('SIGKILL');
      await launch();
    },
    stop: async () => {
      await waitExit('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
