import { connect, type Socket } from 'node:net';

export interface HttpAnswer {
  status: number;
  body: Buffer;
}

/** Without a `Keep-Alive: timeout=N` hint, a server is taken to close idle sockets after this long. */
const DEFAULT_KEEP_ALIVE_SECONDS = 5;
/** A socket is dropped this long before the server would close it: never reused into its close. */
const KEEP_ALIVE_MARGIN_MS = 1_000;
const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * The load generator's HTTP/1.1 client: up to `connections` keep-alive sockets, one exchange at a time
 * on each, the request written in one piece and the answer read by its status line, its headers and a
 * Content-Length body (every inferq answer the bench asks for has one). It is deliberately lean, as
 * wrk is: on the bench's two shared cores node:http's client spends 0.1–0.5 ms of CPU per request of
 * its own, which a latency measurement would otherwise count as the service's.
 *
 * A request waits for a free socket when every socket is busy, and that wait counts in its latency.
 */
export class Http1Pool {
  private readonly idle: Connection[] = [];
  private readonly waiting: ((connection: Connection) => void)[] = [];
  private open = 0;
  private closed = false;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly connections: number,
  ) {}

  async exchange(
    method: string,
    path: string,
    headers: Readonly<Record<string, string>>,
    body?: Buffer,
  ): Promise<HttpAnswer> {
    let head = `${method} ${path} HTTP/1.1\r\nhost: ${this.host}:${this.port}\r\n`;
    for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
    if (body !== undefined) head += `content-length: ${body.byteLength}\r\n`;
    head += '\r\n';
    const connection = await this.acquire();
    try {
      return await connection.exchange(Buffer.from(head, 'latin1'), body);
    } finally {
      this.release(connection);
    }
  }

  close(): void {
    this.closed = true;
    for (const connection of this.idle.splice(0)) connection.destroy();
  }

  private acquire(): Promise<Connection> {
    if (this.closed) return Promise.reject(new Error('the HTTP pool is closed'));
    while (this.idle.length > 0) {
      const connection = this.idle.pop() as Connection;
      if (connection.reusable()) return Promise.resolve(connection);
      this.discard(connection);
    }
    if (this.open < this.connections) {
      this.open++;
      return Promise.resolve(new Connection(this.host, this.port));
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(connection: Connection): void {
    if (this.closed || !connection.reusable()) {
      this.discard(connection);
      // A waiter takes a new socket in place of the one that went.
      const next = this.waiting.shift();
      if (next !== undefined && !this.closed) {
        this.open++;
        next(new Connection(this.host, this.port));
      }
      return;
    }
    const next = this.waiting.shift();
    if (next !== undefined) next(connection);
    else this.idle.push(connection);
  }

  private discard(connection: Connection): void {
    connection.destroy();
    this.open--;
  }
}

/** One socket; `exchange` sends a request and resolves with its answer. */
class Connection {
  private readonly socket: Socket;
  private pending: { resolve: (answer: HttpAnswer) => void; reject: (error: Error) => void } | undefined;
  private received: Buffer = Buffer.alloc(0);
  private gone = false;
  private keepAliveMs = DEFAULT_KEEP_ALIVE_SECONDS * 1000 - KEEP_ALIVE_MARGIN_MS;
  private idleSince = 0;
  private closeAfter = false;

  constructor(host: string, port: number) {
    this.socket = connect({ host, port, noDelay: true });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (error) => this.fail(error));
    this.socket.on('close', () => this.fail(connectionReset()));
  }

  /** Sends `head` and `body` in one writev: a large body is not copied behind its head. */
  exchange(head: Buffer, body: Buffer | undefined): Promise<HttpAnswer> {
    if (this.gone) return Promise.reject(connectionReset());
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.socket.cork();
      this.socket.write(head);
      if (body !== undefined) this.socket.write(body);
      this.socket.uncork();
    });
  }

  /** Still open, not told to close, and not idle so long that the server may be closing it. */
  reusable(): boolean {
    return !this.gone && !this.closeAfter && performance.now() - this.idleSince < this.keepAliveMs;
  }

  destroy(): void {
    this.gone = true;
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.received = this.received.length === 0 ? chunk : Buffer.concat([this.received, chunk]);
    if (this.pending === undefined) return;
    const headerEnd = this.received.indexOf(HEADER_END);
    if (headerEnd < 0) return;
    const head = parseHead(this.received.toString('latin1', 0, headerEnd));
    if (head === undefined) {
      this.fail(new Error('the answer is not HTTP/1.1 with a Content-Length body'));
      return;
    }
    const bodyStart = headerEnd + HEADER_END.length;
    if (this.received.length < bodyStart + head.contentLength) return;
    const body = Buffer.from(this.received.subarray(bodyStart, bodyStart + head.contentLength));
    this.received = this.received.subarray(bodyStart + head.contentLength);
    if (head.keepAliveSeconds !== undefined) {
      this.keepAliveMs = head.keepAliveSeconds * 1000 - KEEP_ALIVE_MARGIN_MS;
    }
    this.closeAfter = head.close;
    this.idleSince = performance.now();
    const { resolve } = this.pending;
    this.pending = undefined;
    resolve({ status: head.status, body });
  }

  private fail(error: Error): void {
    this.gone = true;
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(error);
  }
}

interface ResponseHead {
  status: number;
  contentLength: number;
  close: boolean;
  keepAliveSeconds: number | undefined;
}

/** The status line and the headers the client acts on; undefined for an answer it cannot read. */
export function parseHead(text: string): ResponseHead | undefined {
  const lines = text.split('\r\n');
  const status = /^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? '');
  if (status === null) return undefined;
  let contentLength: number | undefined;
  let close = false;
  let keepAliveSeconds: number | undefined;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'content-length') contentLength = Number(value);
    else if (name === 'transfer-encoding') return undefined;
    else if (name === 'connection') close = value.toLowerCase() === 'close';
    else if (name === 'keep-alive') {
      const timeout = /(?:^|,)\s*timeout=(\d+)/i.exec(value);
      if (timeout !== null) keepAliveSeconds = Number(timeout[1]);
    }
  }
  if (contentLength === undefined || !Number.isSafeInteger(contentLength) || contentLength < 0)
    return undefined;
  return { status: Number(status[1]), contentLength, close, keepAliveSeconds };
}

function connectionReset(): Error {
  return Object.assign(new Error('the connection closed before the answer was complete'), {
    code: 'ECONNRESET',
  });
}
