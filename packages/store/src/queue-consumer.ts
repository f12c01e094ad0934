import type { RedisConnection } from './connection.ts';
import { CONSUMER_GROUP, type QueueKeys } from './keys.ts';
import type { Delivery } from './types.ts';

export interface QueueConsumerOptions {
  /** A connection of its own: XREADGROUP BLOCK holds it while it waits. */
  blocking: RedisConnection;
  queue: QueueKeys;
  /** This worker's consumer name in the group, unique per process. */
  consumer: string;
}

/** XREADGROUP / XAUTOCLAIM entries: [entry id, [field, value, ...]] (fields null for a deleted one). */
type RawEntry = [Buffer, Buffer[] | null];

/**
 * Takes requests from one model version's queue for a worker: its two streams read through the
 * consumer group, so that an entry, once delivered, stays pending (leased to this consumer) until the
 * script that ends or returns its request acknowledges it. A worker that dies leaves its entries
 * pending; once their lease lapses any worker reclaims them (`reclaim`).
 */
export class QueueConsumer {
  readonly consumer: string;
  readonly queue: QueueKeys;
  private readonly blocking: RedisConnection;

  constructor(options: QueueConsumerOptions) {
    this.blocking = options.blocking;
    this.queue = options.queue;
    this.consumer = options.consumer;
  }

  /** Creates the consumer group on both streams (and the streams), from their first entry; idempotent. */
  async ensureGroups(): Promise<void> {
    for (const stream of [this.queue.normal, this.queue.background]) {
      try {
        await this.blocking.xgroup('CREATE', stream, CONSUMER_GROUP, '0', 'MKSTREAM');
      } catch (error) {
        if (!/BUSYGROUP/.test(String(error))) throw error;
      }
    }
  }

  /**
   * Up to `count` new requests, waiting up to `blockMs` for the first. The background band is read
   * only when the normal one has nothing: after a read that took all it asked for (a backlog), each
   * band is read without waiting, normal first; otherwise (the queue was drained) a read waits on
   * both at once, which answers as soon as either receives, so an idle worker spends one command per
   * wake-up. Recreates a group that has gone (a Redis that lost its data) and reads again.
   */
  async read(count: number, blockMs: number): Promise<Delivery[]> {
    let deliveries: Delivery[];
    try {
      deliveries = await this.readOnce(count, blockMs);
    } catch (error) {
      if (!/NOGROUP/.test(String(error))) throw error;
      await this.ensureGroups();
      deliveries = await this.readOnce(count, blockMs);
    }
    this.#backlog = deliveries.length >= count;
    return deliveries;
  }

  /** The last read took as many entries as it asked for: more are likely waiting. */
  get backlog(): boolean {
    return this.#backlog;
  }

  #backlog = true;

  private async readOnce(count: number, blockMs: number): Promise<Delivery[]> {
    const { normal, background } = this.queue;
    if (this.#backlog) {
      for (const stream of [normal, background]) {
        const deliveries = parseStreams(await this.readGroup(count, undefined, [stream]), false);
        if (deliveries.length > 0) return deliveries;
      }
    }
    const reply = await this.readGroup(count, blockMs, [normal, background]);
    // Both bands can answer at once (entries reached both since the last read); normal ones first.
    return parseStreams(reply, false);
  }

  /** XREADGROUP of new entries (`>`) from `streams`, waiting up to `blockMs` when given. */
  private readGroup(count: number, blockMs: number | undefined, streams: string[]): Promise<unknown> {
    return this.blocking.callBuffer(
      'XREADGROUP',
      'GROUP',
      CONSUMER_GROUP,
      this.consumer,
      'COUNT',
      count,
      ...(blockMs === undefined ? [] : ['BLOCK', blockMs]),
      'STREAMS',
      ...streams,
      ...streams.map(() => '>'),
    );
  }

  /**
   * Takes over up to `count` entries whose lease lapsed: delivered at least `minIdleMs` ago to a
   * consumer that neither acknowledged nor renewed them (it died, or froze). Entries deleted meanwhile
   * (their request ended) are only removed from the pending lists.
   */
  async reclaim(minIdleMs: number, count: number): Promise<Delivery[]> {
    const deliveries: Delivery[] = [];
    for (const stream of [this.queue.normal, this.queue.background]) {
      if (deliveries.length >= count) break;
      let reply: unknown;
      try {
        reply = await this.blocking.callBuffer(
          'XAUTOCLAIM',
          stream,
          CONSUMER_GROUP,
          this.consumer,
          minIdleMs,
          '0-0',
          'COUNT',
          count - deliveries.length,
        );
      } catch (error) {
        if (/NOGROUP/.test(String(error))) continue;
        throw error;
      }
      const entries = ((reply as unknown[])[1] ?? []) as RawEntry[];
      for (const raw of entries) {
        const delivery = parseEntry(stream, raw, true);
        if (delivery !== undefined) deliveries.push(delivery);
      }
    }
    return deliveries;
  }

  /**
   * Consumers of the group with nothing pending that were idle longer than `idleMs` (workers that
   * stopped): removed, so the group's consumer list does not grow with every restart.
   */
  async forgetIdleConsumers(idleMs: number): Promise<number> {
    let forgotten = 0;
    for (const stream of [this.queue.normal, this.queue.background]) {
      let consumers: unknown[];
      try {
        consumers = (await this.blocking.xinfo('CONSUMERS', stream, CONSUMER_GROUP)) as unknown[];
      } catch {
        continue;
      }
      for (const consumer of consumers) {
        const info = fieldsOf(consumer as unknown[]);
        if (info.name === this.consumer || Number(info.pending) > 0 || Number(info.idle) < idleMs) continue;
        await this.blocking.xgroup('DELCONSUMER', stream, CONSUMER_GROUP, String(info.name));
        forgotten++;
      }
    }
    return forgotten;
  }
}

function fieldsOf(flat: unknown[]): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) fields[String(flat[i])] = flat[i + 1];
  return fields;
}

function parseStreams(reply: unknown, redelivered: boolean): Delivery[] {
  if (!Array.isArray(reply)) return [];
  const deliveries: Delivery[] = [];
  for (const [name, entries] of reply as [Buffer, RawEntry[]][]) {
    const stream = name.toString();
    for (const raw of entries) {
      const delivery = parseEntry(stream, raw, redelivered);
      if (delivery !== undefined) deliveries.push(delivery);
    }
  }
  return deliveries;
}

function parseEntry(stream: string, [entryId, fields]: RawEntry, redelivered: boolean): Delivery | undefined {
  if (!fields) return undefined;
  let id: string | undefined;
  let createdAt = 0;
  let deadline: number | undefined;
  let attempts = 0;
  let payload: Buffer | undefined;
  let batchShape: string | undefined;
  let trace: string | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const value = fields[i + 1]!;
    switch (fields[i]!.toString()) {
      case 'i':
        id = value.toString();
        break;
      case 't':
        createdAt = Number(value.toString());
        break;
      case 'd':
        deadline = Number(value.toString());
        break;
      case 'a':
        attempts = Number(value.toString());
        break;
      case 'p':
        payload = value;
        break;
      case 'b':
        batchShape = value.toString();
        break;
      case 'c':
        trace = value.toString();
        break;
    }
  }
  if (id === undefined) return undefined;
  const delivery: Delivery = { id, stream, entry: entryId.toString(), createdAt, attempts, redelivered };
  if (deadline !== undefined) delivery.deadline = deadline;
  if (payload !== undefined) delivery.payload = payload;
  if (batchShape !== undefined) delivery.batchShape = batchShape;
  if (trace !== undefined) delivery.trace = trace;
  return delivery;
}
