import type { BatchCostProfile } from '@inferq/protocol';
import type { RedisConnection } from './connection.ts';
import { keysFor } from './keys.ts';

/**
 * A model version's state on one worker, as Triton's repository index reports it: being opened and
 * warmed up, serving, unable to serve (with the reason, verbatim), or no longer served by this worker
 * (removed from the repository or left out by its version policy; it finishes what it took).
 */
export const VERSION_STATES = ['loading', 'ready', 'unavailable', 'retired'] as const;
export type VersionState = (typeof VERSION_STATES)[number];

/** One model version as a worker serves it. */
export interface ServedVersion {
  model: string;
  version: number;
  state: VersionState;
  /** Why the version is unavailable: onnxruntime's message or the config check's, verbatim. */
  reason?: string;
  /** The execution provider the session runs on, once open (a `cuda` config may fall back to `cpu`). */
  provider?: string;
  /** Where the session runs: its own thread, or the worker's main thread. */
  placement?: string;
  /** Time to open the session, and to run the warm-up batch (ms). */
  loadMs?: number;
  warmupMs?: number;
  /** The repository fingerprint of the files the worker loaded (docs/models.md). */
  fingerprint?: string;
  /** Its cost model on this worker, once warm-up measured it. */
  batchCosts?: BatchCostProfile;
}

/** What a worker says of itself with each heartbeat. */
export interface WorkerReport {
  id: string;
  host: string;
  pid: number;
  /** The worker's clock (ms) when it wrote this report. */
  heartbeatAt: number;
  versions: ServedVersion[];
}

export interface FleetRegistryOptions {
  redis: RedisConnection;
  prefix: string;
  /** A worker is live when its last report is at most this old (ms). */
  livenessMs?: number;
}

/** A worker whose report is older than this many liveness windows is removed by the next reader. */
const FORGET_AFTER_WINDOWS = 6;

/**
 * The fleet's view of itself: every worker writes its report (the versions it serves and their
 * states) into one hash with each heartbeat, and the API reads the hash to know, per model version,
 * whether a live worker serves it. One hash under the prefix keeps the view on one Redis Cluster slot.
 */
export class FleetRegistry {
  readonly livenessMs: number;
  private readonly redis: RedisConnection;
  private readonly key: string;

  constructor(options: FleetRegistryOptions) {
    this.redis = options.redis;
    this.key = keysFor(options.prefix).fleet;
    this.livenessMs = options.livenessMs ?? 10_000;
  }

  async report(report: WorkerReport): Promise<void> {
    await this.redis.hset(this.key, report.id, JSON.stringify(report));
  }

  /** Removes a worker at clean shutdown, so the API sees it gone at once. */
  async leave(workerId: string): Promise<void> {
    await this.redis.hdel(this.key, workerId);
  }

  /** The reports of the live workers; long-dead ones are removed on the way. */
  async live(now: number): Promise<WorkerReport[]> {
    const all = await this.redis.hgetall(this.key);
    const live: WorkerReport[] = [];
    const dead: string[] = [];
    for (const [id, json] of Object.entries(all)) {
      let report: WorkerReport;
      try {
        report = JSON.parse(json) as WorkerReport;
      } catch {
        dead.push(id);
        continue;
      }
      if (report.heartbeatAt >= now - this.livenessMs) live.push(report);
      else if (report.heartbeatAt < now - this.livenessMs * FORGET_AFTER_WINDOWS) dead.push(id);
    }
    if (dead.length > 0) await this.redis.hdel(this.key, ...dead);
    return live.sort((a, b) => a.id.localeCompare(b.id));
  }
}
