import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/redis-server.ts';

const REPO_ROOT = resolve(import.meta.dirname, '..', '..');

/** Runs a built entry point to its exit; nothing listens on REDIS_URL's port, so it gets no further. */
function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, args, {
      cwd: REPO_ROOT,
      env: { ...process.env, LOG_LEVEL: 'warn', HOST: '127.0.0.1', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.once('close', (code) => resolveRun({ code, stderr }));
  });
}

describe('a port already in use stops a process with one line naming its variable', () => {
  let busy: Server;
  let busyPort: number;
  let redisUrl: string;

  beforeAll(async () => {
    busyPort = await freePort();
    redisUrl = `redis://127.0.0.1:${await freePort()}`;
    busy = createServer();
    await new Promise<void>((done) => busy.listen(busyPort, '127.0.0.1', done));
  });

  afterAll(async () => {
    await new Promise((done) => busy.close(done));
  });

  const inUse = (variable: string): string =>
    `inferq: ${variable}=${busyPort} is already in use on 127.0.0.1 (EADDRINUSE): stop what listens there or set ${variable} to a free port\n`;

  it("a second worker without its own METRICS_PORT (the worker's metrics port)", async () => {
    const result = await run(['apps/worker/dist/main.js'], {
      REDIS_URL: redisUrl,
      METRICS_PORT: String(busyPort),
    });
    expect(result).toEqual({ code: 1, stderr: inUse('METRICS_PORT') });
  });

  it("the API's PORT", async () => {
    const result = await run(['apps/api/dist/main.js'], { REDIS_URL: redisUrl, PORT: String(busyPort) });
    expect(result).toEqual({ code: 1, stderr: inUse('PORT') });
  });

  it("inferq serve's PORT and METRICS_PORT, before it starts anything", async () => {
    const free = String(await freePort());
    expect(
      await run(['apps/cli/dist/main.js', 'serve'], {
        REDIS_URL: redisUrl,
        PORT: String(busyPort),
        METRICS_PORT: free,
      }),
    ).toEqual({ code: 1, stderr: inUse('PORT') });
    expect(
      await run(['apps/cli/dist/main.js', 'serve'], {
        REDIS_URL: redisUrl,
        PORT: free,
        METRICS_PORT: String(busyPort),
      }),
    ).toEqual({ code: 1, stderr: inUse('METRICS_PORT') });
    expect(
      await run(['apps/cli/dist/main.js', 'serve'], { REDIS_URL: redisUrl, PORT: free, METRICS_PORT: free }),
    ).toEqual({
      code: 1,
      stderr: `inferq: PORT and METRICS_PORT are both ${free}: the API and the worker each need a port of their own\n`,
    });
  });
});
