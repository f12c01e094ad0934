/**
 * `dist/redis-guard.js`: runs redis-server for `inferq serve` and stops it when serve dies.
 *
 * redis-server cannot notice that its parent died, so a `kill -9` of serve would leave it running
 * with its append-only file open (and the next serve on that folder would start a second one). The
 * guard sits between them: it holds an IPC channel to serve, which the kernel closes whatever ends
 * serve; then it waits for the API and worker (serve tells it their pids) to finish draining, since
 * they need Redis for that, and stops redis-server with SIGTERM (which flushes the AOF).
 *
 * Signals from serve go to the whole process group (ManagedChild), so they reach redis-server
 * itself; the guard only outlives it long enough to exit the same way.
 *
 * Usage (serve only): node redis-guard.js <redis-server arguments...>
 *
 * Plain JavaScript so that it runs from source too (the CLI's tests) without a TypeScript loader;
 * the build bundles it as dist/redis-guard.js.
 */
import { spawn } from 'node:child_process';

/** How often the guard looks whether the API and worker are gone after serve died. */
const DRAIN_POLL_MS = 100;

const redis = spawn('redis-server', process.argv.slice(2), { stdio: 'inherit' });
/** Set by serve's message { drainFirst: { pids, timeoutMs } }: whom to wait for, and how long at most. */
let drainFirst;
let stopping = false;

// The group signal reached redis-server too: outlive it, then exit the way it did.
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => {});

redis.once('error', (error) => {
  process.stderr.write(`redis-server: ${error.message}\n`);
  process.exit(127);
});
redis.once('exit', (code, signal) => {
  if (signal !== null) {
    for (const name of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.removeAllListeners(name);
    process.kill(process.pid, signal);
  }
  process.exit(code ?? 1);
});

process.on('message', (message) => {
  if (message?.drainFirst !== undefined) drainFirst = message.drainFirst;
});
process.once('disconnect', () => void parentGone());

async function parentGone() {
  if (stopping) return;
  stopping = true;
  if (drainFirst !== undefined) {
    const deadline = Date.now() + drainFirst.timeoutMs;
    while (drainFirst.pids.some(isAlive) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
    }
  }
  redis.kill('SIGTERM');
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}
