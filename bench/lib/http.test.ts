import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiClient } from './http.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('ApiClient keep-alive pool', () => {
  let server: Server | undefined;
  afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  it("drops a socket idle past the server's Keep-Alive hint instead of reusing it into the server's close", async () => {
    // keepAliveTimeout 2000 is announced as `Keep-Alive: timeout=2`; Node closes the socket 1 s after
    // that (3 s). The agent honours the hint less 1 s, so a socket idle for 1.5 s is not reused: with
    // a busy event loop a reused socket can meet the server's FIN and fail with ECONNRESET.
    let connections = 0;
    server = createServer({ keepAliveTimeout: 2000 }, (req, res) => {
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    server.on('connection', () => connections++);
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const client = new ApiClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, 1);

    const first = await client.get('/');
    const second = await client.get('/');
    expect(connections).toBe(1);
    await sleep(1500);
    const third = await client.get('/');
    await client.close();

    expect([first.status, second.status, third.status]).toEqual([200, 200, 200]);
    expect(connections).toBe(2);
  });
});
