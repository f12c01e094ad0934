import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Config, listenFailure, loadConfigOrExit } from '@inferq/config';
import { describeExit, ManagedChild } from './managed-child.ts';
import { httpStatus, listenProbe, sleep } from './net.ts';
import {
  findOnPath,
  lockDataDir,
  type PrivateRedis,
  REDIS_INSTALL_HINT,
  startPrivateRedis,
  waitForPreviousRedis,
} from './private-redis.ts';
import { findRepoRoot } from './repo-root.ts';
import { writeServeState } from './serve-state.ts';

export interface ServeOptions {
  /** Folder of the private Redis's append-only file; default `<repo>/.data/redis`. */
  dataDir?: string;
}

const READY_TIMEOUT_MS = 60_000;
const READY_POLL_MS = 250;
/** Time the supervisor adds to SHUTDOWN_GRACE_MS before killing a child that is still draining. */
const GRACE_MARGIN_MS = 5_000;
const APPS = ['api', 'worker'] as const;

type StopReason = { kind: 'signal'; signal: NodeJS.Signals } | { kind: 'failure'; message: string };

/** The first reason to stop wins; later ones (the children exiting because we stopped them) are ignored. */
class StopLatch {
  readonly reason: Promise<StopReason>;
  private readonly controller = new AbortController();
  private settle: (reason: StopReason) => void = () => {};

  constructor() {
    this.reason = new Promise((resolve) => {
      this.settle = resolve;
    });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get triggered(): boolean {
    return this.controller.signal.aborted;
  }

  trigger(reason: StopReason): void {
    if (this.triggered) return;
    this.controller.abort();
    this.settle(reason);
  }
}

function note(message: string): void {
  process.stderr.write(`inferq: ${message}\n`);
}

/** The address to reach the API on from this machine: a wildcard bind is reached on loopback. */
export function localHostFor(bindHost: string): string {
  if (bindHost === '' || bindHost === '0.0.0.0' || bindHost === '::') return '127.0.0.1';
  return bindHost.includes(':') ? `[${bindHost}]` : bindHost;
}

/**
 * `inferq serve`: the all-in-one. Starts a private redis-server (unless REDIS_URL is set), the API and
 * one worker; prints `inferq ready: <url>` once /readyz answers 200; on SIGINT/SIGTERM stops the API
 * and worker (they drain within SHUTDOWN_GRACE_MS), then Redis. Resolves with the exit code: 0 after
 * a signal, 1 when anything failed or died on its own.
 */
export async function serve(options: ServeOptions = {}): Promise<number> {
  const config = loadConfigOrExit(process.env);
  if (config.port === 0) {
    note('PORT=0 is not supported by `inferq serve`: it must know where the API listens');
    return 1;
  }
  if (config.port === config.metricsPort) {
    note(
      `PORT and METRICS_PORT are both ${config.port}: the API and the worker each need a port of their own`,
    );
    return 1;
  }
  for (const [variable, port] of [
    ['PORT', config.port],
    ['METRICS_PORT', config.metricsPort],
  ] as const) {
    const error = await listenProbe(config.host, port);
    if (error !== undefined) {
      note(listenFailure(error, variable, config.host, port));
      return 1;
    }
  }
  const root = findRepoRoot();
  const latch = new StopLatch();
  const apps: ManagedChild[] = [];
  let redis: PrivateRedis | undefined;
  let releaseDataDir: (() => void) | undefined;
  let dataDir: string | undefined;
  let removeState: (() => void) | undefined;
  let forced = false;

  let signalsSeen = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signalsSeen++;
    if (signalsSeen === 1) {
      note(`${signal}: stopping (send it again to kill the API and worker at once)`);
      latch.trigger({ kind: 'signal', signal });
    } else if (signalsSeen === 2) {
      forced = true;
      note(`${signal} again: killing the API and worker`);
      for (const child of apps) child.signal('SIGKILL');
    } else {
      redis?.child.signal('SIGKILL');
      releaseDataDir?.();
      process.exit(1);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // SIGHUP reads the model repository again (docs/models.md): passed on to the API and the worker.
  const onHangup = (): void => {
    for (const child of apps) child.signal('SIGHUP');
  };
  process.on('SIGHUP', onHangup);

  const watch = (child: ManagedChild): void => {
    void child.exited.then((exit) => {
      if (latch.triggered) return;
      latch.trigger({
        kind: 'failure',
        message: `${child.name} ${describeExit(exit)} unexpectedly; its last output:\n${child.lastOutput()}`,
      });
    });
  };

  try {
    let redisUrl = config.redisUrl;
    // REDIS_CLUSTER_NODES reaches the API and worker through the environment as it is.
    if (redisUrl === undefined && config.redisCluster === undefined) {
      if (findOnPath('redis-server') === undefined) throw new Error(REDIS_INSTALL_HINT);
      const dir = resolve(options.dataDir ?? join(root, '.data', 'redis'));
      dataDir = dir;
      releaseDataDir = lockDataDir(dir);
      await waitForPreviousRedis(dir);
      redis = await startPrivateRedis({ dir, cwd: root, signal: latch.signal });
      watch(redis.child);
      const socket =
        redis.socketUrl === undefined ? '' : `; the API and worker connect by ${redis.socketUrl}`;
      note(`redis-server pid ${redis.pid} listening on ${redis.url}, data in ${dir}${socket}`);
      redisUrl = redis.socketUrl ?? redis.url;
    }
    if (!latch.triggered) {
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        ...(redisUrl === undefined ? {} : { REDIS_URL: redisUrl }),
      };
      for (const app of APPS) {
        const child = spawnApp(root, app, env);
        apps.push(child);
        watch(child);
      }
      note(apps.map((child) => `${child.name} pid ${child.pid}`).join(', '));
      // Should serve die without stopping them, the guard stops Redis only after these drained.
      redis?.child.send({
        drainFirst: {
          pids: apps.map((child) => child.pid),
          timeoutMs: config.shutdownGraceMs + GRACE_MARGIN_MS,
        },
      });
      const base = `http://${localHostFor(config.host)}:${config.port}`;
      await waitUntilReady(`${base}/readyz`, apps, latch);
      if (!latch.triggered) {
        // Where the other commands find this deployment (inferq queue, models reload, submit).
        if (redis !== undefined && dataDir !== undefined)
          removeState = writeServeState(dataDir, {
            pid: process.pid,
            redisUrl: redis.url,
            apiUrl: base,
            queueBackend: config.queueBackend,
          });
        process.stdout.write(`inferq ready: ${base}\n`);
      }
    }
  } catch (error: unknown) {
    latch.trigger({ kind: 'failure', message: error instanceof Error ? error.message : String(error) });
  }

  const reason = await latch.reason;
  if (reason.kind === 'failure') note(reason.message);
  removeState?.();
  await shutdown(apps, redis, config);
  releaseDataDir?.();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  process.off('SIGHUP', onHangup);
  return reason.kind === 'signal' && !forced ? 0 : 1;
}

function spawnApp(root: string, app: (typeof APPS)[number], env: NodeJS.ProcessEnv): ManagedChild {
  const entry = join(root, 'apps', app, 'dist', 'main.js');
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`npm run build\` first`);
  // The IPC channel is how the child notices that serve died, even of SIGKILL: it then stops itself.
  return new ManagedChild({ name: app, command: process.execPath, args: [entry], cwd: root, env, ipc: true });
}

async function waitUntilReady(url: string, apps: ManagedChild[], latch: StopLatch): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastStatus: number | undefined;
  while (!latch.triggered) {
    lastStatus = await httpStatus(url);
    if (lastStatus === 200) return;
    if (Date.now() >= deadline) {
      const outputs = apps
        .map((child) => `--- last output of ${child.name}:\n${child.lastOutput()}`)
        .join('\n');
      throw new Error(
        `${url} did not answer 200 within ${READY_TIMEOUT_MS / 1000} s (last answer: ${lastStatus ?? 'none'})\n${outputs}`,
      );
    }
    await sleep(READY_POLL_MS, latch.signal);
  }
}

/** API and worker first (they finish what they hold and need Redis for it), Redis last. */
async function shutdown(
  apps: ManagedChild[],
  redis: PrivateRedis | undefined,
  config: Config,
): Promise<void> {
  await Promise.all(apps.map((child) => child.stop('SIGTERM', config.shutdownGraceMs + GRACE_MARGIN_MS)));
  if (redis !== undefined) await redis.stop();
}
