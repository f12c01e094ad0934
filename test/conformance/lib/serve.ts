// inferq started on the conformance repository the way the README does (`npm start` = inferq serve),
// with what it costs: start-up time, the worker's and the API's memory, Redis connections.
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { Redis } from 'ioredis';
import { type AllInOne, startAllInOne } from '../../helpers/processes.ts';

export interface Footprint {
  /** Resident set sizes from each process's /metrics (process_resident_memory_bytes), in bytes. */
  workerRssBytes: number;
  apiRssBytes: number;
  /** OS threads of the worker process (/proc/<pid>/status), when it could be found. */
  workerThreads: number | undefined;
  /** Redis `connected_clients` (the CLI's own check connection excluded: it has none open). */
  redisClients: number;
  /** Ready versions per placement (`main`, `thread`), from the workers' reports in the fleet view. */
  placements: Record<string, number>;
}

/** Counts the ready versions of every worker report in the fleet hash (docs/models.md, "Capacity"). */
async function placementsOf(redis: Redis): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  // A private redis-server: one deployment, one fleet hash.
  for (const key of await redis.keys('*:fleet')) {
    for (const text of Object.values(await redis.hgetall(key))) {
      const report = JSON.parse(text) as { versions: { state: string; placement?: string }[] };
      for (const version of report.versions) {
        if (version.state !== 'ready') continue;
        const placement = version.placement ?? 'unknown';
        counts[placement] = (counts[placement] ?? 0) + 1;
      }
    }
  }
  return counts;
}

export interface Served {
  app: AllInOne;
  /** From spawning `inferq serve` to its `inferq ready:` line. */
  startupMs: number;
  /** The 1-minute load average when it was spawned. */
  loadAverage: number;
}

export async function serveRepository(dir: string): Promise<Served> {
  const loadAverage = loadavg()[0] ?? 0;
  const started = performance.now();
  const app = await startAllInOne({ env: { MODEL_REPOSITORY: dir, LOG_LEVEL: 'warn' } });
  return { app, startupMs: performance.now() - started, loadAverage };
}

async function rssOf(metricsUrl: string): Promise<number> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const line = /^process_resident_memory_bytes(?:\{[^}]*\})? (\d+(?:\.\d+)?(?:e\+\d+)?)$/m.exec(text);
  if (line === null) throw new Error(`${metricsUrl}/metrics has no process_resident_memory_bytes`);
  return Number(line[1]);
}

function parentOf(pid: string): string | undefined {
  try {
    return /^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

/** The worker is the CLI's child running apps/worker/dist/main.js; the CLI is redis-server's parent. */
function workerThreadsOf(app: AllInOne): number | undefined {
  if (app.redis === undefined) return undefined;
  const cli = parentOf(String(app.redis.pid));
  for (const pid of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    if (parentOf(pid) !== cli) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (!cmdline.includes('apps/worker/dist/main.js')) continue;
    const threads = /^Threads:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return threads === undefined ? undefined : Number(threads);
  }
  return undefined;
}

export async function measureFootprint(app: AllInOne): Promise<Footprint> {
  if (app.redis === undefined) throw new Error('inferq serve reported no private redis-server');
  const redis = new Redis(app.redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const info = await redis.info('clients');
    const clients = /^connected_clients:(\d+)/m.exec(info)?.[1];
    return {
      workerRssBytes: await rssOf(app.metricsUrl),
      apiRssBytes: await rssOf(app.url),
      workerThreads: workerThreadsOf(app),
      // This connection is one of them.
      redisClients: Number(clients) - 1,
      placements: await placementsOf(redis),
    };
  } finally {
    redis.disconnect();
  }
}
