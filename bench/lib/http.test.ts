import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Http1Pool, parseHead } from './http1.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('Http1Pool against node:http', () => {
  let server: Server | undefined;
  let connections = 0;
  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
    connections = 0;
  });

  async function serve(
    handler: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void,
    keepAliveTimeout = 5000,
  ): Promise<number> {
    server = createServer({ keepAliveTimeout }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => handler(req, res, Buffer.concat(chunks)));
    });
    server.on('connection', () => connections++);
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  }

  it('sends the method, path, headers and body, and reads status and body back', async () => {
    const port = await serve((req, res, body) => {
      const echo = Buffer.from(
        JSON.stringify({
          method: req.method,
          url: req.url,
          type: req.headers['content-type'],
          body: body.toString(),
        }),
      );
      res.writeHead(201, { 'content-length': echo.byteLength }).end(echo);
    });
    const pool = new Http1Pool('127.0.0.1', port, 1);
    const answer = await pool.exchange(
      'POST',
      '/v1/x?y=1',
      { 'content-type': 'text/plain' },
      Buffer.from('héllo'),
    );
    const empty = await pool.exchange('GET', '/z', {});
    pool.close();
    expect(answer.status).toBe(201);
    expect(JSON.parse(answer.body.toString())).toEqual({
      method: 'POST',
      url: '/v1/x?y=1',
      type: 'text/plain',
      body: 'héllo',
    });
    expect(JSON.parse(empty.body.toString())).toEqual({ method: 'GET', url: '/z', body: '' });
    expect(connections).toBe(1);
  });

  it('reads an answer that arrives in pieces', async () => {
    const port = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': 6 });
      res.flushHeaders();
      res.write('abc');
      setTimeout(() => res.end('def'), 20);
    });
    const pool = new Http1Pool('127.0.0.1', port, 1);
    const answer = await pool.exchange('GET', '/', {});
    pool.close();
    expect(answer).toEqual({ status: 200, body: Buffer.from('abcdef') });
  });

  it('keeps at most `connections` sockets and queues the rest', async () => {
    let inFlight = 0;
    let mostInFlight = 0;
    const port = await serve((_req, res) => {
      inFlight++;
      mostInFlight = Math.max(mostInFlight, inFlight);
      setTimeout(() => {
        inFlight--;
        res.writeHead(200, { 'content-length': 2 }).end('ok');
      }, 10);
    });
    const pool = new Http1Pool('127.0.0.1', port, 2);
    const answers = await Promise.all(Array.from({ length: 7 }, () => pool.exchange('GET', '/', {})));
    pool.close();
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200, 200]);
    expect(connections).toBe(2);
    expect(mostInFlight).toBe(2);
  });

  it("drops a socket idle past the server's Keep-Alive hint instead of reusing it into the server's close", async () => {
    // keepAliveTimeout 2000 is announced as `Keep-Alive: timeout=2`; Node closes the socket 1 s after
    // that (3 s). The pool drops a socket idle for the hint less 1 s, so after 1.5 s it opens another:
    // reusing one the server is closing fails with ECONNRESET.
    const port = await serve((_req, res) => res.writeHead(200, { 'content-length': 2 }).end('ok'), 2000);
    const pool = new Http1Pool('127.0.0.1', port, 1);
    await pool.exchange('GET', '/', {});
    await pool.exchange('GET', '/', {});
    expect(connections).toBe(1);
    await sleep(1500);
    const third = await pool.exchange('GET', '/', {});
    pool.close();
    expect(third.status).toBe(200);
    expect(connections).toBe(2);
  });

  it('opens a new socket after an answer with Connection: close', async () => {
    const port = await serve((_req, res) =>
      res.writeHead(200, { 'content-length': 2, connection: 'close' }).end('ok'),
    );
    const pool = new Http1Pool('127.0.0.1', port, 1);
    const answers = [await pool.exchange('GET', '/', {}), await pool.exchange('GET', '/', {})];
    pool.close();
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    expect(connections).toBe(2);
  });

  it('rejects with ECONNRESET when the server drops the socket mid-answer, and serves the next request', async () => {
    let calls = 0;
    const port = await serve((_req, res) => {
      calls++;
      if (calls === 1) {
        res.writeHead(200, { 'content-length': 10 });
        res.write('abc');
        setTimeout(() => res.socket?.destroy(), 10);
        return;
      }
      res.writeHead(200, { 'content-length': 2 }).end('ok');
    });
    const pool = new Http1Pool('127.0.0.1', port, 1);
    await expect(pool.exchange('GET', '/', {})).rejects.toMatchObject({ code: 'ECONNRESET' });
    const next = await pool.exchange('GET', '/', {});
    pool.close();
    expect(next).toEqual({ status: 200, body: Buffer.from('ok') });
    expect(connections).toBe(2);
  });
});

describe('parseHead', () => {
  it('reads the status, Content-Length, Connection and the Keep-Alive timeout', () => {
    expect(
      parseHead(
        'HTTP/1.1 202 Accepted\r\nContent-Length: 12\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5',
      ),
    ).toEqual({ status: 202, contentLength: 12, close: false, keepAliveSeconds: 5 });
    expect(parseHead('HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: Close')).toEqual({
      status: 200,
      contentLength: 0,
      close: true,
      keepAliveSeconds: undefined,
    });
  });

  it('refuses what it cannot read: chunked bodies, no Content-Length, not HTTP/1.1', () => {
    expect(parseHead('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked')).toBeUndefined();
    expect(parseHead('HTTP/1.1 200 OK\r\nContent-Type: text/plain')).toBeUndefined();
    expect(parseHead('HTTP/1.1 200 OK\r\nContent-Length: -1')).toBeUndefined();
    expect(parseHead('SSH-2.0-OpenSSH_9.2')).toBeUndefined();
  });
});
