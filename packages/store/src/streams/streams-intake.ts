import type { RedisConnection } from '../connection.ts';
import { closeConnection } from '../connection.ts';
import { deliveryKey, type IntakeHandler, type QueueIntake, type QueueLogger } from '../queue/queue.ts';
import type { QueueConsumer } from '../queue-consumer.ts';
import type { RequestStore } from '../request-store.ts';
import type { Completion, Delivery, StartOutcome } from '../types.ts';
import { StreamQueueAdmin } from './stream-admin.ts';

/** Lease timings; the defaults are what the worker runs with (docs/design.md, crash recovery). */
export interface LeaseTimings {
  /** An entry not renewed for this long may be reclaimed by any worker. */
  leaseMs: number;
  /** How often a worker looks for lapsed leases to reclaim. */
  reclaimIntervalMs: number;
}

export const DEFAULT_LEASE_TIMINGS: LeaseTimings = { leaseMs: 10_000, reclaimIntervalMs: 2_000 };

export interface StreamsIntakeOptions {
  store: RequestStore;
  consumer: QueueConsumer;
  /** The consumer's own connection, closed with the intake. */
  blocking: RedisConnection;
  model: string;
  version: number;
  capacity: number;
  logger: QueueLogger;
  leases?: LeaseTimings;
}

/** How long one read of the queue blocks: also how long a stopping worker may wait for it to return. */
const READ_BLOCK_MS = 1_000;
/** How often a worker enqueues again any retry that fell due (its own are also timed exactly). */
const PROMOTE_INTERVAL_MS = 1_000;
/** Consumers of a stopped worker (nothing pending) are forgotten after this long. */
const CONSUMER_FORGET_MS = 3_600_000;

/**
 * A worker's hold on one model version's streams: reads new entries through the consumer group (up
 * to `capacity` in hand), keeps the leases of those in hand alive, reclaims entries whose worker
 * stopped renewing them, and enqueues retries as they fall due. An entry stays pending in the group,
 * leased to this consumer, until the script that ends or returns its request acknowledges it.
 */
export class StreamsIntake implements QueueIntake {
  private readonly options: StreamsIntakeOptions;
  private readonly leases: LeaseTimings;
  private readonly admin: StreamQueueAdmin;
  /** `stream entry` -> the request taken by it. */
  private readonly held = new Map<string, Delivery>();
  private readonly timers: NodeJS.Timeout[] = [];
  private handler: IntakeHandler | undefined;
  private roomFreed: (() => void) | undefined;
  private fetching: Promise<void> | undefined;
  private closing = false;

  constructor(options: StreamsIntakeOptions) {
    this.options = options;
    this.leases = options.leases ?? DEFAULT_LEASE_TIMINGS;
    this.admin = new StreamQueueAdmin(options.store);
  }

  open(handler: IntakeHandler): void {
    this.handler = handler;
    this.fetching = this.fetchLoop();
    const every = (ms: number, task: () => Promise<unknown>, what: string): void => {
      const timer = setInterval(() => {
        task().catch((error: unknown) => this.options.logger.warn({ err: error }, `${what} failed`));
      }, ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(Math.floor(this.leases.leaseMs / 3), () => this.renewLeases(), 'lease renewal');
    every(this.leases.reclaimIntervalMs, () => this.reclaimLapsed(), 'reclaim of lapsed leases');
    every(PROMOTE_INTERVAL_MS, () => this.promoteDue(), 'enqueueing due retries');
    every(
      CONSUMER_FORGET_MS / 4,
      () => this.options.consumer.forgetIdleConsumers(CONSUMER_FORGET_MS),
      'cleanup',
    );
  }

  async close(): Promise<void> {
    this.closing = true;
    this.roomFreed?.();
    await this.fetching;
  }

  async dispose(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    await closeConnection(this.options.blocking);
  }

  start(
    deliveries: readonly Delivery[],
    now: number,
    readPayloadOf?: ReadonlySet<string>,
  ): Promise<StartOutcome[]> {
    return this.options.store.start(deliveries, now, readPayloadOf);
  }

  complete(completions: readonly Completion[]): Promise<void> {
    return this.options.store.complete(completions);
  }

  async retryLater(items: readonly { delivery: Delivery; due: number }[]): Promise<void> {
    if (items.length === 0) return;
    await this.options.store.retryLater(
      items.map(({ delivery, due }) => ({
        ref: delivery,
        due,
        ...(delivery.payload ? { payload: delivery.payload } : {}),
      })),
    );
    // Enqueued again as soon as the first is due, not at the next periodic promote.
    const soonest = Math.min(...items.map((item) => item.due));
    setTimeout(() => this.promoteDue().catch(() => undefined), Math.max(0, soonest - Date.now()) + 5).unref();
  }

  handBack(deliveries: readonly Delivery[]): Promise<number> {
    return this.admin.handBack(
      deliveries.map((delivery) => ({
        ref: delivery,
        ...(delivery.payload ? { payload: delivery.payload } : {}),
      })),
    );
  }

  release(delivery: Delivery): void {
    this.held.delete(deliveryKey(delivery));
    this.roomFreed?.();
  }

  private get room(): number {
    return this.options.capacity - this.held.size;
  }

  private async fetchLoop(): Promise<void> {
    const { consumer, logger } = this.options;
    let failures = 0;
    while (!this.closing) {
      if (this.room <= 0) {
        await new Promise<void>((resolve) => {
          this.roomFreed = resolve;
        });
        this.roomFreed = undefined;
        continue;
      }
      try {
        if (failures > 0) await consumer.ensureGroups();
        const deliveries = await consumer.read(this.room, READ_BLOCK_MS);
        this.hand(deliveries);
        failures = 0;
        if (deliveries.length > 0 && !consumer.backlog) await this.handler?.afterQuietRead?.();
      } catch (error) {
        if (this.closing) break;
        failures++;
        logger.warn({ err: error, model: this.options.model }, 'reading the queue failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, 50 * 2 ** failures)));
      }
    }
  }

  /** Puts deliveries in hand and passes them on; reclaim may return one still held here: one copy only. */
  private hand(deliveries: readonly Delivery[]): void {
    const fresh: Delivery[] = [];
    for (const delivery of deliveries) {
      const key = deliveryKey(delivery);
      if (this.held.has(key)) continue;
      this.held.set(key, delivery);
      fresh.push(delivery);
    }
    if (fresh.length > 0) this.handler?.deliver(fresh);
  }

  private async renewLeases(): Promise<void> {
    const byStream = new Map<string, Delivery[]>();
    for (const delivery of this.held.values()) {
      const list = byStream.get(delivery.stream) ?? [];
      list.push(delivery);
      byStream.set(delivery.stream, list);
    }
    for (const [stream, deliveries] of byStream) {
      const lost = new Set(
        await this.admin.renewLeases(
          stream,
          this.options.consumer.consumer,
          deliveries.map((d) => d.entry),
        ),
      );
      for (const delivery of deliveries) {
        if (!lost.has(delivery.entry)) continue;
        this.options.logger.warn(
          { id: delivery.id, model: this.options.model },
          'a request this worker held was reclaimed by another (this worker stalled past its lease)',
        );
        this.handler?.revoked(delivery);
      }
    }
  }

  private async reclaimLapsed(): Promise<void> {
    if (this.closing || this.room <= 0) return;
    const reclaimed = await this.options.consumer.reclaim(this.leases.leaseMs, this.room);
    if (reclaimed.length === 0) return;
    this.options.logger.warn(
      { model: this.options.model, requests: reclaimed.length },
      'took over requests whose worker stopped before finishing them',
    );
    this.hand(reclaimed);
  }

  private async promoteDue(): Promise<void> {
    await this.admin.promoteDue(this.options.model, this.options.version, Date.now());
  }
}
