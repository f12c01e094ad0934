import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManagedChild } from './managed-child.ts';
import { findFreePort, redisAnswersPing, redisCommand, sleep } from './net.ts';

export const REDIS_INSTALL_HINT =
  'redis-server is not on PATH and REDIS_URL is unset: install it (Debian/Ubuntu: `sudo apt-get install redis-server`, macOS: `brew install redis`) or set REDIS_URL';

const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

/** Full path of an executable found on PATH, or undefined. */
export function findOnPath(command: string, path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this folder
    }
  }
  return undefined;
}

/** Where redis-server writes its pid in its folder (and removes it when it shuts down cleanly). */
export const REDIS_PID_NAME = 'redis-server.pid';

/**
 * The guard that runs redis-server and stops it when serve dies (redis-guard.mjs): beside this file
 * from source, `dist/redis-guard.js` in the bundle (an entry point of the CLI's build).
 */
const GUARD_CANDIDATES = ['./redis-guard.mjs', './redis-guard.js'];

function guardScript(): string {
  for (const candidate of GUARD_CANDIDATES) {
    const path = fileURLToPath(new URL(candidate, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new Error(
    `the redis guard script is missing beside ${fileURLToPath(import.meta.url)}: run \`npm run build\``,
  );
}

/** Where the private Redis's socket goes in its folder. */
export const SOCKET_NAME = 'redis.sock';
/** sun_path holds 108 bytes on Linux, 104 on macOS: a longer path gets no socket. */
const MAX_SOCKET_PATH_BYTES = 100;

/** The socket path in `dir`, or undefined when the path would be too long for a unix socket. */
export function socketPathIn(dir: string): string | undefined {
  const path = join(dir, SOCKET_NAME);
  return Buffer.byteLength(path) <= MAX_SOCKET_PATH_BYTES ? path : undefined;
}

/**
 * The settings the architecture asks of every Redis that holds queues: durable (AOF, fsync every
 * second), never evicting (queued requests would be lost otherwise), no RDB snapshots (AOF is the
 * record); loopback TCP for tools, and a unix socket (owner only) for the API and worker.
 */
export function redisServerArgs(port: number, dir: string, socket?: string): string[] {
  return [
    '--port',
    String(port),
    '--bind',
    HOST,
    '--dir',
    dir,
    '--appendonly',
    'yes',
    '--appendfsync',
    'everysec',
    '--maxmemory-policy',
    'noeviction',
    '--save',
    '',
    '--loglevel',
    'warning',
    '--pidfile',
    join(dir, REDIS_PID_NAME),
    ...(socket === undefined ? [] : ['--unixsocket', socket, '--unixsocketperm', '700']),
  ];
}

export interface PrivateRedis {
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  /** `unix:///<dir>/redis.sock`, when the folder's path is short enough for a socket. */
  readonly socketUrl: string | undefined;
  /** redis-server's own pid (`child` is the guard that runs it). */
  readonly pid: number;
  readonly child: ManagedChild;
  /** SHUTDOWN (flushes the append-only file), falling back to signals. */
  stop(): Promise<void>;
}

/**
 * Two redis-servers appending to one folder would corrupt each other's AOF, so a folder belongs to
 * one all-in-one at a time. A lock left by a process that no longer runs is taken over.
 */
export function lockDataDir(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const lockPath = join(dir, 'inferq-serve.pid');
  try {
    writeFileSync(lockPath, String(process.pid), { flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const holder = Number(readFileSync(lockPath, 'utf8').trim());
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
      throw new Error(
        `${dir} is in use by another \`inferq serve\` (pid ${holder}); stop it, set REDIS_URL, or pass --data-dir`,
      );
    }
    writeFileSync(lockPath, String(process.pid));
  }
  return () => rmSync(lockPath, { force: true });
}

/**
 * A serve that was killed leaves its lock behind, and its redis-server (stopped by the guard once
 * the API and worker drained) may still be flushing the append-only file: starting a second one on
 * the folder now would corrupt it, so wait for the first to be gone.
 */
export async function waitForPreviousRedis(dir: string, timeoutMs = STOP_TIMEOUT_MS): Promise<void> {
  const pid = readPid(join(dir, REDIS_PID_NAME));
  if (pid === undefined) return;
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() >= deadline) {
      throw new Error(`a redis-server (pid ${pid}) still uses ${dir}: stop it, or pass another --data-dir`);
    }
    await sleep(100);
  }
}

function readPid(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && pid !== process.pid ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** True while a process with this pid exists (EPERM: it exists, owned by someone else). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Starts redis-server on a free port and resolves once it answers PING. The port is chosen before
 * redis binds it, so another process can win the race: then it is tried again on a new port.
 */
export async function startPrivateRedis(options: {
  dir: string;
  cwd: string;
  signal: AbortSignal;
  /** Where redis-server's log lines go; default: our stderr, prefixed. */
  forward?: (line: string) => void;
}): Promise<PrivateRedis> {
  const print = options.forward ?? ((line: string) => process.stderr.write(`redis-server | ${line}\n`));
  // Its start-up banner is noise once it runs; when it fails to start, the error repeats those lines.
  let started = false;
  const forward = (line: string): void => {
    if (started) print(line);
  };
  const attempts = 3;
  for (let attempt = 1; ; attempt++) {
    const port = await findFreePort(HOST);
    const socket = socketPathIn(options.dir);
    const child = new ManagedChild({
      name: 'redis-server',
      command: process.execPath,
      args: [guardScript(), ...redisServerArgs(port, options.dir, socket)],
      cwd: options.cwd,
      env: process.env,
      forward,
      ipc: true,
    });
    const outcome = await waitUntilAnswering(child, port, options.signal);
    if (outcome === 'ready') {
      started = true;
      return {
        url: `redis://${HOST}:${port}`,
        socketUrl: socket === undefined ? undefined : `unix://${encodeURI(socket)}`,
        // Written before it answers PING; the guard's pid only if it somehow was not.
        pid: readPid(join(options.dir, REDIS_PID_NAME)) ?? (child.pid as number),
        child,
        stop: () => stopRedis(child, port),
      };
    }
    await child.stop('SIGKILL', STOP_TIMEOUT_MS);
    if (outcome === 'aborted') throw new Error('start-up interrupted');
    if (outcome === 'timeout' || attempt === attempts) {
      throw new Error(`redis-server did not start (${outcome}):\n${child.lastOutput()}`);
    }
  }
}

async function waitUntilAnswering(
  child: ManagedChild,
  port: number,
  signal: AbortSignal,
): Promise<'ready' | 'exited' | 'timeout' | 'aborted'> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (signal.aborted) return 'aborted';
    if (!child.running) return 'exited';
    if (await redisAnswersPing(HOST, port)) return 'ready';
    await sleep(50, signal);
  }
  return 'timeout';
}

async function stopRedis(child: ManagedChild, port: number): Promise<void> {
  if (!child.running) return;
  try {
    await redisCommand(HOST, port, 'SHUTDOWN', STOP_TIMEOUT_MS);
  } catch {
    // Not answering: the signal below still stops it (SIGTERM also flushes the AOF).
  }
  if (await child.waitForExit(STOP_TIMEOUT_MS)) return;
  await child.stop('SIGTERM', STOP_TIMEOUT_MS);
}
