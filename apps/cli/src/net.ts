import { connect, createServer } from 'node:net';

/** A TCP port that was free a moment ago (the OS picks it; another process could still take it). */
export async function findFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('the OS gave no port'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

/**
 * Sends one inline Redis command and resolves with the first reply line ('' when the server
 * closed the connection without answering, as SHUTDOWN does). Speaking RESP by hand keeps the CLI
 * free of a Redis client library for the two commands it needs.
 */
export async function redisCommand(
  host: string,
  port: number,
  command: string,
  timeoutMs = 1000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let reply = '';
    const finish = (error?: Error): void => {
      socket.destroy();
      if (error) reject(error);
      else resolve(reply.split('\r\n')[0] ?? '');
    };
    socket.setTimeout(timeoutMs, () => finish(new Error(`no answer from Redis at ${host}:${port}`)));
    socket.once('connect', () => socket.write(`${command}\r\n`));
    socket.on('data', (chunk) => {
      reply += chunk.toString('utf8');
      if (reply.includes('\r\n')) finish();
    });
    socket.once('end', () => finish());
    socket.once('error', (error) => finish(error));
  });
}

/** True once Redis answers PING (it answers -LOADING while it replays its append-only file). */
export async function redisAnswersPing(host: string, port: number): Promise<boolean> {
  try {
    return (await redisCommand(host, port, 'PING')) === '+PONG';
  } catch {
    return false;
  }
}

/** The HTTP status of a GET, or undefined when nothing answered. */
export async function httpStatus(url: string, timeoutMs = 2000): Promise<number | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await response.body?.cancel();
    return response.status;
  } catch {
    return undefined;
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Whether `port` can be listened on at `host` now: undefined when it can, else the listen error
 * (EADDRINUSE...). A check before anything starts, so that a busy port is one clear line rather
 * than a child's failure after Redis was started for nothing.
 */
export async function listenProbe(host: string, port: number): Promise<Error | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', (error) => resolve(error));
    server.listen(port, host, () => server.close(() => resolve(undefined)));
  });
}
