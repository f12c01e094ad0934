import { isCluster } from '../connection.ts';
import { CONSUMER_GROUP } from '../keys.ts';
import type { RequestStore } from '../request-store.ts';
import { execOrThrow, type ScriptedRedis, withScripts } from '../scripts.ts';
import type { QueueCounts, QueueEntryRef } from '../types.ts';

/** Requests enqueued again per stream and call of the promote script. */
const PROMOTE_BATCH = 500;

/**
 * Administration of the streams queue of a deployment: pause and resume, counts and depth, which
 * versions have a queue, the leases of what a worker holds, retries that fell due, and giving
 * unstarted requests back. The request lifecycle itself is RequestStore's, shared by every backend.
 */
export class StreamQueueAdmin {
  private readonly store: RequestStore;
  private readonly scripts: ScriptedRedis;

  constructor(store: RequestStore) {
    this.store = store;
    this.scripts = withScripts(store.redis);
  }

  /**
   * New requests of a model version wait in its held list instead of reaching workers, until
   * `resume`; requests already in its streams are not affected.
   */
  async pause(model: string, version: number): Promise<void> {
    await this.store.redis.set(this.store.queueKeys(model, version).paused, '1');
  }

  /** Lifts `pause`: the held requests are enqueued in arrival order. Returns how many. */
  async resume(model: string, version: number): Promise<number> {
    const queue = this.store.queueKeys(model, version);
    return this.scripts.inferqResume(
      queue.paused,
      queue.normal,
      queue.held(queue.normal),
      queue.background,
      queue.held(queue.background),
      this.store.keys.prefix,
    );
  }

  /** Whether `pause` holds the model version's new requests. */
  async isPaused(model: string, version: number): Promise<boolean> {
    return (await this.store.redis.exists(this.store.queueKeys(model, version).paused)) === 1;
  }

  /** The versions of `model` whose queue exists in Redis (a worker or a request created it). */
  async queuedVersions(model: string): Promise<number[]> {
    // The normal stream's key without its version number: `…<model>.v`.
    const stem = this.store.queueKeys(model, 0).normal.slice(0, -1);
    const versions = new Set<number>();
    // SCAN answers for one node: on a cluster, every master is scanned (the prefix's hash tag puts
    // the keys on one of them, but which one is the cluster's business).
    const nodes = isCluster(this.store.redis) ? this.store.redis.nodes('master') : [this.store.redis];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', `${stem}*`, 'COUNT', 1000);
        cursor = next;
        for (const key of keys) {
          const version = /^[1-9][0-9]*$/.exec(key.slice(stem.length))?.[0];
          if (version !== undefined && this.store.queueKeys(model, Number(version)).normal === key)
            versions.add(Number(version));
        }
      } while (cursor !== '0');
    }
    return [...versions].sort((a, b) => a - b);
  }

  /** Where the requests of a model version's queue are (both bands together). */
  async queueCounts(model: string, version: number): Promise<QueueCounts> {
    const queue = this.store.queueKeys(model, version);
    const streams = [queue.normal, queue.background];
    const pipeline = this.store.redis.pipeline();
    for (const stream of streams) {
      pipeline.xlen(stream);
      pipeline.xpending(stream, CONSUMER_GROUP);
      pipeline.llen(queue.held(stream));
      pipeline.zcard(queue.delayed(stream));
    }
    // XPENDING fails with NOGROUP before any worker created the group: nothing is taken then.
    const replies = (await pipeline.exec()) ?? [];
    const counts: QueueCounts = { waiting: 0, taken: 0, held: 0, delayed: 0 };
    for (let i = 0; i < streams.length; i++) {
      const [length, pending, held, delayed] = replies.slice(i * 4, i * 4 + 4).map(([error, value]) => {
        if (error === null) return value;
        if (/NOGROUP/.test(String(error))) return undefined;
        throw error;
      });
      // Entries are deleted when acknowledged, so the stream holds exactly the waiting and taken ones.
      const taken = Array.isArray(pending) ? Number(pending[0] ?? 0) : 0;
      counts.taken += taken;
      counts.waiting += Math.max(0, Number(length ?? 0) - taken);
      counts.held += Number(held ?? 0);
      counts.delayed += Number(delayed ?? 0);
    }
    return counts;
  }

  /** Requests of a model version waiting or running: what autoscaling and `inferq_queue_depth` read. */
  async queueDepth(model: string, version: number): Promise<number> {
    const counts = await this.queueCounts(model, version);
    return counts.waiting + counts.taken + counts.held + counts.delayed;
  }

  /**
   * Entries ever added to a model version's streams (`XINFO STREAM`'s entries-added, both bands): it
   * moves with every request that reaches the queue, and only then.
   */
  async entriesAdded(model: string, version: number): Promise<number> {
    const queue = this.store.queueKeys(model, version);
    let total = 0;
    for (const stream of [queue.normal, queue.background]) {
      let info: unknown;
      try {
        info = await this.store.redis.xinfo('STREAM', stream);
      } catch (error) {
        if (/no such key/i.test(String(error))) continue;
        throw error;
      }
      const flat = info as unknown[];
      const index = flat.indexOf('entries-added');
      total += index >= 0 ? Number(flat[index + 1]) : 0;
    }
    return total;
  }

  /**
   * Resets the lease of every entry a worker still holds; returns those another worker reclaimed
   * meanwhile (or that are no longer pending).
   */
  async renewLeases(stream: string, consumer: string, entries: readonly string[]): Promise<string[]> {
    if (entries.length === 0) return [];
    return this.scripts.inferqRenew(stream, CONSUMER_GROUP, consumer, ...entries);
  }

  /** Enqueues again the requests of a model version whose retry is due. Returns how many. */
  async promoteDue(model: string, version: number, now: number): Promise<number> {
    const queue = this.store.queueKeys(model, version);
    const streams = [queue.normal, queue.background];
    // Two phases (promote-n.lua): the due ids first, so the script can declare their records.
    const pipeline = this.store.redis.pipeline();
    for (const stream of streams)
      pipeline.zrangebyscore(queue.delayed(stream), '-inf', now, 'LIMIT', 0, PROMOTE_BATCH);
    const due = (await execOrThrow(pipeline)) as string[][];
    const keys: string[] = [];
    const ids: string[] = [];
    streams.forEach((stream, index) => {
      for (const id of due[index] ?? []) {
        keys.push(this.store.keys.request(id), stream, queue.delayed(stream));
        ids.push(id);
      }
    });
    if (ids.length === 0) return 0;
    return this.scripts.inferqPromote(keys.length, ...keys, now, ...ids);
  }

  /** A stopping worker's unstarted requests go back to their streams (hand-back-0.lua). Returns how many. */
  async handBack(items: readonly { ref: QueueEntryRef; payload?: Buffer }[]): Promise<number> {
    if (items.length === 0) return 0;
    return this.scripts.inferqHandBack(
      items.length * 2,
      ...items.flatMap(({ ref }) => [this.store.keys.request(ref.id), ref.stream]),
      ...items.flatMap(({ ref, payload }) => [ref.id, ref.entry, payload ?? '']),
    );
  }
}
