import { BatchFormer, batchSize, type ShapedCosts } from '@inferq/batcher';
import type { Logger, Metrics, Tracing } from '@inferq/observability';
import { parseBatchShape } from '@inferq/protocol';
import type { ModelVersion } from '@inferq/repository';
import { batchGroupKey, type ModelSession } from '@inferq/runtime';
import { type Delivery, deliveryKey, type QueueIntake } from '@inferq/store';
import { BatchEnds } from './batch-ends.ts';
import { BatchRunner } from './batch-runner.ts';
import type { VersionLiveStats } from './live-stats.ts';
import type { Taken } from './taken.ts';

export { PAYLOAD_UNREADABLE, WORKER_LOST } from './batch-ends.ts';

export interface ModelWorkerOptions {
  version: ModelVersion;
  session: ModelSession;
  /** This worker's hold on the version's queue; the worker closes it. */
  intake: QueueIntake;
  /** Runs per request before it ends `failed` (JOB_ATTEMPTS). */
  jobAttempts: number;
  /** Largest MessagePack outputs of one request; larger ones end `failed` (`output_too_large`). Default: no cap. */
  maxOutputBytes?: number;
  /** OpenTelemetry spans of each batch (an OTLP endpoint is configured); absent: off. */
  tracing?: Tracing;
  /**
   * The version's cost model (measured at warm-up) and the shape it speaks for: batches of that group
   * key are sized by it and update it; those of other shapes close at maxBatchSize.
   */
  costs?: ShapedCosts;
  metrics: Metrics;
  /** The status page's figures of this version (live-stats.ts). */
  liveStats?: VersionLiveStats;
  logger: Logger;
}

/** Requests a worker holds per model version: one batch running while the next forms. */
export function intakeCapacity(version: ModelVersion): number {
  return Math.max(2, version.config.maxBatchSize * 2);
}

/**
 * When a request without a deadline of its own is due, after it was accepted, in a model without a
 * latency objective: it keeps its place among requests with deadlines (EDF) without starving.
 */
export const UNDATED_HORIZON_MS = 1_000;

/**
 * The time a request is due by, which orders the batches a worker forms (earliest first): its
 * deadline (`timeoutMs`), else its acceptance plus the model's latency objective, else plus
 * UNDATED_HORIZON_MS.
 */
export function dueBy(delivery: Delivery, latencyObjectiveMs: number | undefined): number {
  return delivery.deadline ?? delivery.createdAt + (latencyObjectiveMs ?? UNDATED_HORIZON_MS);
}

/** Longest a read waits for the ends of a main-thread batch to be sent first. */
const ENDS_SENT_WAIT_MS = 5;

/**
 * Serves one model version: its intake delivers requests (up to two batches' worth in hand), the
 * batch former groups them by shape, and each batch is started, stacked, run once and completed in
 * one script call (BatchRunner, BatchEnds). A request stays leased to this worker until its end is
 * written; should this process die, the queue gives it to another worker.
 */
export class ModelWorker {
  readonly version: ModelVersion;
  private readonly options: ModelWorkerOptions;
  private readonly former: BatchFormer<Taken>;
  private readonly runner: BatchRunner;
  /** `deliveryKey` -> the request taken by it. */
  private readonly inHand = new Map<string, Taken>();
  /** Called once the next batch's ends have been sent to Redis (or its requests let go). */
  private endsSent: (() => void) | undefined;
  /** Set by close(): batches formed from now on go back to the queue instead of running. */
  private stopping = false;

  constructor(options: ModelWorkerOptions) {
    this.options = options;
    this.version = options.version;
    const letGo = (taken: Taken): void => this.letGo(taken);
    const ends = new BatchEnds({
      version: options.version,
      intake: options.intake,
      jobAttempts: options.jobAttempts,
      metrics: options.metrics,
      logger: options.logger,
      letGo,
      endsSent: () => this.endsSent?.(),
    });
    this.runner = new BatchRunner({
      version: options.version,
      session: options.session,
      intake: options.intake,
      ends,
      ...(options.maxOutputBytes === undefined ? {} : { maxOutputBytes: options.maxOutputBytes }),
      ...(options.costs === undefined ? {} : { costs: options.costs }),
      ...(options.tracing === undefined ? {} : { tracing: options.tracing }),
      ...(options.liveStats === undefined ? {} : { liveStats: options.liveStats }),
      metrics: options.metrics,
      logger: options.logger,
      letGo,
    });
    const { maxBatchSize, maxBatchDelayMs, preferredBatchSizes } = options.version.config;
    const unmeasured = { maxBatchSize, preferredBatchSizes };
    const measured = options.costs === undefined ? unmeasured : { ...unmeasured, costs: options.costs.costs };
    this.former = new BatchFormer<Taken>(
      {
        maxBatchSize,
        maxBatchDelayMs,
        dispatchWhenIdle: true,
        size: (waitingRows, groupKey) =>
          batchSize(groupKey === options.costs?.groupKey ? measured : unmeasured, waitingRows),
      },
      {
        run: (batch) => (this.stopping ? this.handBack(batch) : this.runner.run(batch)),
        groupKey: (taken) => taken.groupKey,
        rows: (taken) => taken.rows,
        deadline: (taken) => dueBy(taken.delivery, options.version.config.latencyObjectiveMs),
      },
    );
  }

  start(): void {
    this.options.intake.open({
      deliver: (deliveries) => this.take(deliveries),
      revoked: (delivery) => {
        const taken = this.inHand.get(deliveryKey(delivery));
        if (taken !== undefined) taken.revoked = true;
      },
      // A model run on the main thread ends its batch within a millisecond: the next read waits until
      // that batch's results are on their way, so that its send is not ahead of them on this thread
      // (each send costs real time here). With a backlog the read goes at once: the next batch is
      // there to be formed.
      afterQuietRead: () =>
        this.options.session.placement === 'main' ? this.untilEndsSent(ENDS_SENT_WAIT_MS) : Promise.resolve(),
    });
  }

  /** Stops taking requests, lets the running batch finish, gives formed-but-unstarted ones back. */
  async close(): Promise<void> {
    this.stopping = true;
    await this.options.intake.close();
    await this.former.drain();
    await this.options.intake.dispose();
  }

  private take(deliveries: readonly Delivery[]): void {
    const now = Date.now();
    for (const delivery of deliveries) {
      const taken: Taken = { delivery, arrivedAt: now, revoked: false, ...this.batchPlace(delivery) };
      this.inHand.set(deliveryKey(delivery), taken);
      this.former.add(taken);
    }
  }

  /**
   * Which requests this one may share a batch with, and its rows: from the batch shape the API put in
   * its queue entry, so batches are formed by shape before any payload is read.
   */
  private batchPlace(delivery: Delivery): Pick<Taken, 'groupKey' | 'rows'> {
    const { config, signature } = this.version;
    if (config.maxBatchSize === 0) return { groupKey: '', rows: 1 };
    const shape =
      delivery.batchShape === undefined
        ? undefined
        : parseBatchShape(delivery.batchShape, signature.inputs.length);
    // Enqueued without one (by an older API, or a tool writing to the store): nothing says what it may
    // share a batch with, so it shares none.
    if (shape === undefined) return { groupKey: `alone ${deliveryKey(delivery)}`, rows: 1 };
    const inputNames = signature.inputs.map((input) => input.name);
    return { groupKey: batchGroupKey(shape, inputNames, config.pad), rows: shape.rows };
  }

  private letGo(taken: Taken): void {
    this.inHand.delete(deliveryKey(taken.delivery));
    this.options.intake.release(taken.delivery);
    this.endsSent?.();
  }

  private untilEndsSent(maxMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, maxMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.endsSent = () => {
        this.endsSent = undefined;
        done();
      };
    });
  }

  private async handBack(batch: Taken[]): Promise<void> {
    const { intake, logger } = this.options;
    const live = batch.filter((t) => !t.revoked);
    try {
      const given = await intake.handBack(live.map((t) => t.delivery));
      if (given > 0) logger.info({ requests: given }, 'stopping: gave unstarted requests back to the queue');
    } catch (error) {
      // Their leases lapse and another worker reclaims them: late, but nothing is lost.
      logger.warn(
        { err: error },
        'could not give unstarted requests back; they return when their leases lapse',
      );
    }
    for (const taken of batch) this.letGo(taken);
  }
}
