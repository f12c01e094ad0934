/**
 * What the fault tests and the soak script share: the built API and worker as real child processes,
 * an HTTP client that opens a fresh connection per request (so a server that stops accepting refuses
 * cleanly instead of racing a reused keep-alive socket), a pub/sub counter of completion messages,
 * and the final tally of accepted, completed, lost and duplicated requests.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { type Agent, request as httpRequest } from 'node:http';
import { dirname, join } from 'node:path';
import { decodeCompletionMessage } from '@inferq/protocol';
import { Redis } from 'ioredis';
import { TEST_QUEUE_BACKEND } from '../helpers/backend.ts';
import { freePort } from '../helpers/redis-server.ts';

/** The repository root, found upwards from here (this file also runs bundled, from another folder). */
export const ROOT = repositoryRoot(import.meta.dirname);
export const PREFIX = '{inferq}';
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'expired']);

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A built inferq process started by a test. */
export interface AppProcess {
  readonly name: string;
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  /** Everything it wrote so far, stdout and stderr interleaved (pino JSON lines). */
  output(): string;
  signal(name: NodeJS.Signals): void;
  /** SIGTERM and the exit; SIGKILL if it is still running a minute later. Safe to call twice. */
  stop(): Promise<ExitInfo>;
}

export interface ApiProcess extends AppProcess {
  readonly base: string;
}

export interface WorkerProcess extends AppProcess {
  /** The worker's METRICS_PORT: /metrics, /healthz, /readyz. */
  readonly metricsUrl: string;
}

export interface AppOptions {
  redisUrl: string;
  modelRepository: string;
  /** Extra environment (MODELS, SHUTDOWN_GRACE_MS, ...). */
  env?: Record<string, string>;
}

function spawnApp(name: string, script: string, env: Record<string, string>): AppProcess {
  const child: ChildProcess = spawn(process.execPath, [script], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<ExitInfo>((resolveExit) => {
    child.once('exit', (code, signal) => resolveExit({ code, signal }));
  });
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  return {
    name,
    pid: child.pid ?? -1,
    exited,
    output: () => output,
    signal: (signal) => {
      if (running()) child.kill(signal);
    },
    stop: async () => {
      if (running()) child.kill('SIGTERM');
      const timer = setTimeout(() => running() && child.kill('SIGKILL'), 60_000);
      const info = await exited;
      clearTimeout(timer);
      return info;
    },
  };
}

/**
 * Starts `node apps/api/dist/main.js` on a free port; resolves once /healthz answers. The fault tests
 * stop, kill and start workers under load, so their API accepts requests while no worker is live
 * (WAIT_FOR_CAPACITY=true, as an elastic deployment runs): what they check is that such requests
 * wait durably and end once a worker returns. Refusal without capacity is tested in model-lifecycle
 * and the e2e suite.
 */
export async function startApi(options: AppOptions): Promise<ApiProcess> {
  const port = await freePort();
  const app = spawnApp('api', 'apps/api/dist/main.js', {
    REDIS_URL: options.redisUrl,
    MODEL_REPOSITORY: options.modelRepository,
    HOST: '127.0.0.1',
    PORT: String(port),
    WAIT_FOR_CAPACITY: 'true',
    ...options.env,
  });
  const base = `http://127.0.0.1:${port}`;
  await waitUntilServing(app, `${base}/healthz`);
  return { ...app, base };
}

/** Starts `node apps/worker/dist/main.js`; resolves once its /readyz answers 200 (models loaded). */
export async function startWorker(options: AppOptions): Promise<WorkerProcess> {
  const metricsPort = await freePort();
  const app = spawnApp('worker', 'apps/worker/dist/main.js', {
    REDIS_URL: options.redisUrl,
    MODEL_REPOSITORY: options.modelRepository,
    HOST: '127.0.0.1',
    METRICS_PORT: String(metricsPort),
    ...options.env,
  });
  const metricsUrl = `http://127.0.0.1:${metricsPort}`;
  await waitUntilServing(app, `${metricsUrl}/readyz`);
  return { ...app, metricsUrl };
}

async function waitUntilServing(app: AppProcess, url: string): Promise<void> {
  let exit: ExitInfo | undefined;
  void app.exited.then((info) => {
    exit = info;
  });
  try {
    await waitFor(
      async () => {
        if (exit !== undefined) {
          throw new Error(`${app.name} exited (${JSON.stringify(exit)}) before serving:\n${app.output()}`);
        }
        return (await get(url).catch(() => undefined))?.status === 200;
      },
      `${app.name} serving ${url}`,
      90_000,
    );
  } catch (error) {
    // The caller never gets a handle on it: stop it here rather than leave it running.
    await app.stop();
    throw error;
  }
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One HTTP exchange on a connection of its own. Rejects with the socket error (ECONNREFUSED, ...). */
export function http(
  url: string,
  options: {
    method?: string;
    headers?: Record<string, string>;
    body?: Uint8Array;
    timeoutMs?: number;
    /** A keep-alive agent for high request rates; default: a connection of its own. */
    agent?: Agent;
  } = {},
): Promise<HttpAnswer> {
  return new Promise((resolveAnswer, rejectAnswer) => {
    const req = httpRequest(
      url,
      { method: options.method ?? 'GET', headers: options.headers, agent: options.agent ?? false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', rejectAnswer);
        res.on('end', () =>
          resolveAnswer({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
      },
    );
    req.setTimeout(options.timeoutMs ?? 30_000, () => req.destroy(new Error(`no answer from ${url}`)));
    req.on('error', rejectAnswer);
    req.end(options.body);
  });
}

export function get(url: string, agent?: Agent): Promise<HttpAnswer> {
  return http(url, agent ? { agent } : {});
}

export function json<T>(answer: HttpAnswer): T {
  return JSON.parse(answer.body.toString('utf8')) as T;
}

/** POST /v1/models/{model}/infer with a JSON body. */
export function submit(
  base: string,
  model: string,
  body: unknown,
  options: { headers?: Record<string, string>; agent?: Agent; timeoutMs?: number } = {},
): Promise<HttpAnswer> {
  return http(`${base}/v1/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...options.headers },
    body: Buffer.from(JSON.stringify(body)),
    ...(options.agent ? { agent: options.agent } : {}),
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
  });
}

export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs: number,
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolveSleep) => setTimeout(resolveSleep, ms));
}

/**
 * Counts completion messages per request id, as a client subscribed to every done channel sees
 * them (PSUBSCRIBE <prefix>:done:*). ioredis resubscribes by itself after a reconnect.
 */
export class DoneCounter {
  readonly counts = new Map<string, number>();
  readonly statuses = new Map<string, string>();
  /** When the first message of each request arrived (ms since epoch). */
  readonly firstAt = new Map<string, number>();
  private readonly redis: Redis;

  private constructor(redis: Redis) {
    this.redis = redis;
  }

  static async start(redisUrl: string): Promise<DoneCounter> {
    const redis = new Redis(redisUrl, {
      maxRetriesPerRequest: null,
      retryStrategy: (attempt) => Math.min(50 * attempt, 500),
    });
    // A restarted Redis shows up as connection errors until it is back; the counter just waits.
    redis.on('error', () => undefined);
    const counter = new DoneCounter(redis);
    const channelPrefix = `${PREFIX}:done:`;
    redis.on('pmessageBuffer', (_pattern: Buffer, channel: Buffer, message: Buffer) => {
      const id = channel.toString('utf8').slice(channelPrefix.length);
      counter.counts.set(id, (counter.counts.get(id) ?? 0) + 1);
      if (!counter.firstAt.has(id)) counter.firstAt.set(id, Date.now());
      counter.statuses.set(id, decodeCompletionMessage(message).status);
    });
    await redis.psubscribe(`${channelPrefix}*`);
    return counter;
  }

  /** Messages received in all. */
  get total(): number {
    let sum = 0;
    for (const n of this.counts.values()) sum += n;
    return sum;
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

export interface RequestRecordJson {
  id: string;
  status: string;
  outputs?: Record<string, { dtype: string; shape: number[]; data: (number | string)[] }>;
  error?: { code: string; message: string };
  batchSize?: number;
  startedAt?: string;
  finishedAt?: string;
}

/**
 * Reads every request through the API (GET /v1/requests/{id}) until all are terminal or the time is
 * up; returns the last record read of each (undefined: never readable).
 */
export async function pollUntilTerminal(
  base: string,
  ids: readonly string[],
  timeoutMs: number,
  agent?: Agent,
): Promise<Map<string, RequestRecordJson | undefined>> {
  const records = new Map<string, RequestRecordJson | undefined>(ids.map((id) => [id, undefined]));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = ids.filter((id) => !TERMINAL.has(records.get(id)?.status ?? ''));
    if (open.length === 0 || Date.now() > deadline) return records;
    for (let i = 0; i < open.length; i += 16) {
      await Promise.all(
        open.slice(i, i + 16).map(async (id) => {
          const answer = await get(`${base}/v1/requests/${id}`, agent).catch(() => undefined);
          if (answer?.status === 200) records.set(id, json<RequestRecordJson>(answer));
        }),
      );
    }
    if (ids.some((id) => !TERMINAL.has(records.get(id)?.status ?? ''))) await sleep(200);
  }
}

export interface Tally {
  accepted: number;
  completed: number;
  lost: number;
  duplicated: number;
  /** Terminal status -> count, over accepted requests. */
  byStatus: Record<string, number>;
  /** Accepted ids whose record never became terminal. */
  lostIds: string[];
  /** Accepted ids with more (or fewer) than one completion message. */
  duplicatedIds: string[];
  unannouncedIds: string[];
}

/**
 * completed: accepted requests whose record is terminal; lost: the others; duplicated: accepted
 * requests that got more than one completion message. `unannounced` (no message at all) is
 * reported separately: pub/sub is at-most-once while a subscriber reconnects.
 */
export function tally(
  accepted: readonly string[],
  records: ReadonlyMap<string, RequestRecordJson | undefined>,
  done: DoneCounter,
): Tally {
  const byStatus: Record<string, number> = {};
  const lostIds: string[] = [];
  const duplicatedIds: string[] = [];
  const unannouncedIds: string[] = [];
  for (const id of accepted) {
    const status = records.get(id)?.status;
    if (status !== undefined && TERMINAL.has(status)) byStatus[status] = (byStatus[status] ?? 0) + 1;
    else lostIds.push(id);
    const messages = done.counts.get(id) ?? 0;
    if (messages > 1) duplicatedIds.push(id);
    if (messages === 0) unannouncedIds.push(id);
  }
  return {
    accepted: accepted.length,
    completed: accepted.length - lostIds.length,
    lost: lostIds.length,
    duplicated: duplicatedIds.length,
    byStatus,
    lostIds,
    duplicatedIds,
    unannouncedIds,
  };
}

export function formatTally(label: string, t: Tally, extra: Record<string, number | string> = {}): string {
  const fields = {
    accepted: t.accepted,
    completed: t.completed,
    lost: t.lost,
    duplicated: t.duplicated,
    ...extra,
  };
  return `${label}: ${Object.entries(fields)
    .map(([key, value]) => `${key}=${value}`)
    .join(' ')}`;
}

/** A Prometheus gauge or counter without labels from a /metrics text, e.g. process_resident_memory_bytes. */
export async function scrapeMetric(metricsUrl: string, name: string): Promise<number> {
  const text = (await get(`${metricsUrl}/metrics`)).body.toString('utf8');
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`${metricsUrl}/metrics has no ${name}`);
  return Number(line.slice(name.length + 1));
}

/** The exit of `app`, or a rejection (with its output) if it is still running after `timeoutMs`. */
export async function exitWithin(app: AppProcess, timeoutMs: number): Promise<ExitInfo> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rejectTimeout) => {
    timer = setTimeout(
      () => rejectTimeout(new Error(`${app.name} still running after ${timeoutMs} ms:\n${app.output()}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([app.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A float32 [1, width] tensor whose values identify request `n` (exact in float32). */
export function rowFor(n: number, width: number): number[] {
  return Array.from({ length: width }, (_, i) => n * 4 + (i % 4) - 1.5);
}

/** The streams of a model version's queue (keys.ts `queue`): its normal and background bands. */
export function queueStreams(model: string, version = 1): string[] {
  const normal = `${PREFIX}:q:${model}.v${version}`;
  return [normal, `${normal}:background`];
}

/** The requests of a model version whose queue entries a worker has taken and not yet acknowledged. */
export async function takenRequestIds(redis: Redis, model: string): Promise<string[]> {
  // BullMQ's active list holds the jobs workers took (job id = request id).
  if (TEST_QUEUE_BACKEND === 'bullmq') return redis.lrange(`${PREFIX}:bull:${model}.v1:active`, 0, -1);
  const ids: string[] = [];
  for (const stream of queueStreams(model)) {
    let pending: [string, string, number, number][];
    try {
      pending = (await redis.xpending(stream, 'workers', '-', '+', 100_000)) as [
        string,
        string,
        number,
        number,
      ][];
    } catch {
      continue;
    }
    for (const [entry] of pending) {
      const [found] = await redis.xrange(stream, entry, entry);
      const fields = found?.[1] ?? [];
      const id = fields[fields.indexOf('i') + 1];
      if (id !== undefined) ids.push(id);
    }
  }
  return ids;
}

/** Where each request stands, in its record and its queue: printed when a test finds lost requests. */
export async function explainRequests(redisUrl: string, ids: readonly string[]): Promise<string[]> {
  const redis = new Redis(redisUrl);
  try {
    return await Promise.all(
      ids.map(async (id) => {
        const record = await redis.hgetall(`${PREFIX}:req:${id}`);
        let entry = 'none';
        if (record.q && record.entry) {
          const pending = (await redis.xpending(
            record.q,
            'workers',
            record.entry,
            record.entry,
            1,
          )) as unknown[][];
          const inStream = (await redis.xrange(record.q, record.entry, record.entry)).length > 0;
          entry = `${record.entry} inStream=${inStream} pending=${JSON.stringify(pending[0] ?? null)}`;
        }
        return `${id}: record=${record.status ?? 'missing'} entry=${entry} attempts=${record.attempts ?? 0} stalls=${record.stalls ?? 0} retry=${record.retry ?? ''}`;
      }),
    );
  } finally {
    redis.disconnect();
  }
}

function repositoryRoot(from: string): string {
  let dir = from;
  while (!existsSync(join(dir, 'apps', 'api', 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no inferq repository above ${from}`);
    dir = parent;
  }
  return dir;
}

/** Resident set size of a process in bytes, from /proc (Linux), else from its /metrics. */
export async function residentBytes(pid: number, metricsUrl: string): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kib = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
    if (kib !== undefined) return Number(kib) * 1024;
  } catch {
    // not Linux: ask the process itself
  }
  return scrapeMetric(metricsUrl, 'process_resident_memory_bytes');
}
