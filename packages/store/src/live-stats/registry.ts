import type { RedisConnection } from '../connection.ts';
import { keysFor } from '../keys.ts';
import { firstSlotOfWindow, type LiveStatsReport, STATS_SLOT_MS, STATS_WINDOW_SLOTS } from './window.ts';

export interface LiveStatsRegistryOptions {
  redis: RedisConnection;
  prefix: string;
}

/**
 * Where every process's live figures meet: one hash (`<prefix>:stats`, on the prefix's Cluster slot),
 * one field per process holding its LiveStatsReport as JSON. Writers send a report only when they
 * counted something, at most once per flush interval; a reader sums what every report holds within
 * its window, so a process that stopped still counts for the work it did in the last minute.
 */
/**
 * Every this many writes (about a minute at a 2 s flush), a writer also drops the reports of
 * processes gone for over two windows: new processes (rollouts, scaling to and from zero) each add
 * a field, and the hash must not grow while nobody opens the status page.
 */
const PRUNE_EVERY_WRITES = 30;

export class LiveStatsRegistry {
  private readonly redis: RedisConnection;
  private readonly key: string;
  private writes = 0;

  constructor(options: LiveStatsRegistryOptions) {
    this.redis = options.redis;
    this.key = keysFor(options.prefix).stats;
  }

  async write(report: LiveStatsReport): Promise<void> {
    await this.redis.hset(this.key, report.id, JSON.stringify(report));
    if (this.writes++ % PRUNE_EVERY_WRITES === 0) await this.read(report.writtenAt);
  }

  /**
   * Every report that may still hold slots of the window ending at `now`; those written before the
   * window began (their process stopped, or has been idle for a minute) are removed on the way.
   */
  async read(now: number): Promise<LiveStatsReport[]> {
    const all = await this.redis.hgetall(this.key);
    const windowStart = firstSlotOfWindow(now) * STATS_SLOT_MS;
    // A writer's clock a little ahead or behind must not cost it its report.
    const forgetBefore = windowStart - STATS_WINDOW_SLOTS * STATS_SLOT_MS;
    const reports: LiveStatsReport[] = [];
    const stale: string[] = [];
    for (const [id, json] of Object.entries(all)) {
      const report = parseReport(json);
      if (report === undefined || report.writtenAt < forgetBefore) stale.push(id);
      else if (report.writtenAt >= windowStart) reports.push(report);
    }
    if (stale.length > 0) await this.redis.hdel(this.key, ...stale);
    return reports.sort((a, b) => a.id.localeCompare(b.id));
  }
}

function parseReport(json: string): LiveStatsReport | undefined {
  try {
    const report = JSON.parse(json) as Partial<LiveStatsReport> | null;
    if (
      typeof report?.id !== 'string' ||
      typeof report.writtenAt !== 'number' ||
      typeof report.startedAt !== 'number' ||
      typeof report.versions !== 'object' ||
      report.versions === null ||
      typeof report.cache !== 'object' ||
      report.cache === null
    ) {
      return undefined;
    }
    return report as LiveStatsReport;
  } catch {
    return undefined;
  }
}
