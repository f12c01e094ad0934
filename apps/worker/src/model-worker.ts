import { BatchFormer } from '@inferq/batcher';
import type { Logger, Metrics } from '@inferq/observability';
import {
  decodePayload,
  encodeTensorMap,
  parseBatchShape,
  type RequestError,
  type TensorMap,
} from '@inferq/protocol';
import type { ModelVersion } from '@inferq/repository';
import {
  batchGroupKey,
  batchRows,
  cropOutputs,
  type ModelSession,
  splitOutputs,
  stackInputs,
} from '@inferq/runtime';
import type { Completion, Delivery, QueueConsumer, RequestStore, StartOutcome } from '@inferq/store';
import { bisectFailedRun } from './bisect.ts';

/** Error code of a request whose workers kept stopping under it (it may be what kills them). */
export const WORKER_LOST = 'worker_lost';
/** Error code of a request whose payload is gone or unreadable: nothing could ever run it. */
export const PAYLOAD_UNREADABLE = 'payload_unreadable';

/** A request this worker took from its queue and has not given back or ended yet. */
interface Taken {
  delivery: Delivery;
  /** When this worker took it (ms since epoch). */
  arrivedAt: number;
  /** Another worker reclaimed it (this one stalled past its lease): it must not start here. */
  revoked: boolean;
  /** Requests of one key may share a batch (batchGroupKey), known from the entry, not the payload. */
  groupKey: string;
  /** Rows it adds to a batch. */
  rows: number;
}

/** A started request ready for the model. */
interface Runnable {
  taken: Taken;
  createdAt: number;
  inputs: TensorMap;
  outputs: string[] | undefined;
  rows: number;
}

/** Lease timings; the defaults are what the worker runs with (docs/design.md, crash recovery). */
export interface LeaseTimings {
  /** An entry not renewed for this long may be reclaimed by any worker. */
  leaseMs: number;
  /** How often a worker looks for lapsed leases to reclaim. */
  reclaimIntervalMs: number;
}

export const DEFAULT_LEASE_TIMINGS: LeaseTimings = { leaseMs: 10_000, reclaimIntervalMs: 2_000 };

export interface ModelWorkerOptions {
  version: ModelVersion;
  session: ModelSession;
  store: RequestStore;
  consumer: QueueConsumer;
  /** Runs per request before it ends `failed` (JOB_ATTEMPTS). */
  jobAttempts: number;
  /** Largest MessagePack outputs of one request; larger ones end `failed` (`output_too_large`). Default: no cap. */
  maxOutputBytes?: number;
  leases?: LeaseTimings;
  metrics: Metrics;
  logger: Logger;
}

/** How long one read of the queue blocks: also how long a stopping worker may wait for it to return. */
const READ_BLOCK_MS = 1_000;
/** Backoff of a failed run before its next attempt: base × 2^(failed runs - 1). */
const RETRY_BASE_MS = 100;
/** How often a worker enqueues again any retry that fell due (its own are also timed exactly). */
const PROMOTE_INTERVAL_MS = 1_000;
/** Consumers of a stopped worker (nothing pending) are forgotten after this long. */
const CONSUMER_FORGET_MS = 3_600_000;
/** Longest a read waits for the ends of a main-thread batch to be sent first. */
const ENDS_SENT_WAIT_MS = 5;
/** Writes of a batch's results tried before its requests are left to lapse and run again. */
const COMPLETE_TRIES = 4;

/**
 * Serves one model version: takes requests from its queue (up to two batches' worth in hand: one
 * running while the next forms), the batch former groups them, and each batch is started, stacked,
 * run once and completed in one script call. A request stays pending in the queue, leased to this
 * worker (renewed while it holds it), until its end is written; should this process die, any worker
 * reclaims it once the lease lapses.
 */
export class ModelWorker {
  readonly version: ModelVersion;
  private readonly options: ModelWorkerOptions;
  private readonly leases: LeaseTimings;
  private readonly former: BatchFormer<Taken>;
  private readonly capacity: number;
  /** `stream entry` -> the request taken by it. */
  private readonly inHand = new Map<string, Taken>();
  private readonly timers: NodeJS.Timeout[] = [];
  private roomFreed: (() => void) | undefined;
  /** Called once the next batch's ends have been sent to Redis (or its requests let go). */
  private endsSent: (() => void) | undefined;
  private fetching: Promise<void> | undefined;
  /** Set by close(): batches formed from now on go back to the queue instead of running. */
  private stopping = false;

  constructor(options: ModelWorkerOptions) {
    this.options = options;
    this.version = options.version;
    this.leases = options.leases ?? DEFAULT_LEASE_TIMINGS;
    const { maxBatchSize, maxBatchDelayMs } = options.version.config;
    this.capacity = Math.max(2, maxBatchSize * 2);
    this.former = new BatchFormer<Taken>(
      { maxBatchSize, maxBatchDelayMs, dispatchWhenIdle: true },
      {
        run: (batch) => (this.stopping ? this.handBack(batch) : this.runBatch(batch)),
        groupKey: (taken) => taken.groupKey,
        rows: (taken) => taken.rows,
      },
    );
  }

  start(): void {
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

  /** Stops taking requests, lets the running batch finish, gives formed-but-unstarted ones back. */
  async close(): Promise<void> {
    this.stopping = true;
    this.roomFreed?.();
    await this.fetching;
    for (const timer of this.timers) clearInterval(timer);
    await this.former.drain();
  }

  private async fetchLoop(): Promise<void> {
    const { consumer, logger } = this.options;
    let failures = 0;
    while (!this.stopping) {
      const room = this.capacity - this.inHand.size;
      if (room <= 0) {
        await new Promise<void>((resolve) => {
          this.roomFreed = resolve;
        });
        this.roomFreed = undefined;
        continue;
      }
      try {
        if (failures > 0) await consumer.ensureGroups();
        const deliveries = await consumer.read(room, READ_BLOCK_MS);
        this.take(deliveries);
        failures = 0;
        // A model run on the main thread ends its batch within a millisecond: the next read waits
        // until that batch's results are on their way, so that its send is not ahead of them on this
        // thread (each send costs real time here). With a backlog it goes at once: the next batch is
        // there to be formed.
        if (deliveries.length > 0 && !consumer.backlog && this.options.session.placement === 'main') {
          await this.untilEndsSent(ENDS_SENT_WAIT_MS);
        }
      } catch (error) {
        if (this.stopping) break;
        failures++;
        logger.warn({ err: error, model: this.version.name }, 'reading the queue failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, 50 * 2 ** failures)));
      }
    }
  }

  private take(deliveries: readonly Delivery[]): void {
    const now = Date.now();
    for (const delivery of deliveries) {
      const key = handKey(delivery);
      // Reclaim may hand back an entry this worker still holds (its renewal came late): one copy only.
      if (this.inHand.has(key)) continue;
      const taken: Taken = { delivery, arrivedAt: now, revoked: false, ...this.batchPlace(delivery) };
      this.inHand.set(key, taken);
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
    if (shape === undefined) return { groupKey: `alone ${handKey(delivery)}`, rows: 1 };
    const inputNames = signature.inputs.map((input) => input.name);
    return { groupKey: batchGroupKey(shape, inputNames, config.pad), rows: shape.rows };
  }

  private letGo(taken: Taken): void {
    this.inHand.delete(handKey(taken.delivery));
    this.roomFreed?.();
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

  private async renewLeases(): Promise<void> {
    const byStream = new Map<string, Taken[]>();
    for (const taken of this.inHand.values()) {
      const list = byStream.get(taken.delivery.stream) ?? [];
      list.push(taken);
      byStream.set(taken.delivery.stream, list);
    }
    for (const [stream, takens] of byStream) {
      const lost = new Set(
        await this.options.store.renewLeases(
          stream,
          this.options.consumer.consumer,
          takens.map((t) => t.delivery.entry),
        ),
      );
      for (const taken of takens) {
        if (!lost.has(taken.delivery.entry)) continue;
        taken.revoked = true;
        this.options.logger.warn(
          { id: taken.delivery.id, model: this.version.name },
          'a request this worker held was reclaimed by another (this worker stalled past its lease)',
        );
      }
    }
  }

  private async reclaimLapsed(): Promise<void> {
    const room = this.capacity - this.inHand.size;
    if (this.stopping || room <= 0) return;
    const reclaimed = await this.options.consumer.reclaim(this.leases.leaseMs, room);
    if (reclaimed.length === 0) return;
    this.options.logger.warn(
      { model: this.version.name, requests: reclaimed.length },
      'took over requests whose worker stopped before finishing them',
    );
    this.take(reclaimed);
  }

  private async promoteDue(): Promise<void> {
    await this.options.store.promoteDue(this.version.name, this.version.version, Date.now());
  }

  private async handBack(batch: Taken[]): Promise<void> {
    const { store, logger } = this.options;
    const live = batch.filter((t) => !t.revoked);
    try {
      const given = await store.handBack(
        live.map((t) => ({
          ref: t.delivery,
          ...(t.delivery.payload ? { payload: t.delivery.payload } : {}),
        })),
      );
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

  private async runBatch(batch: Taken[]): Promise<void> {
    const { store, logger, metrics } = this.options;
    const startedAt = Date.now();
    const live = batch.filter((t) => !t.revoked);
    for (const taken of batch) if (taken.revoked) this.letGo(taken);
    if (live.length === 0) return;
    const readPayloadOf = new Set(live.filter((t) => !t.delivery.payload).map((t) => t.delivery.id));
    // The start script marks requests running and reads the payloads that did not come with their
    // entries. It is awaited before the run when it has payloads to read, when a request came back
    // from a worker that stopped under it (it may be what stops workers: the script counts that), or
    // when one is past its deadline (the script expires it). Otherwise a thread-placed model runs
    // while the script is under way (awaited before results are written), and a model fast enough for
    // the main thread skips it: nobody could see `running` for so short a run, and the completion
    // script does the start's bookkeeping itself.
    const overdue = live.some((t) => t.delivery.deadline !== undefined && startedAt > t.delivery.deadline);
    const confirmFirst = readPayloadOf.size > 0 || overdue || live.some((t) => t.delivery.redelivered);
    const skipStart = !confirmFirst && this.options.session.placement === 'main';
    const started = skipStart
      ? Promise.resolve(
          live.map(
            (t): StartOutcome => ({ id: t.delivery.id, state: 'run', createdAt: t.delivery.createdAt }),
          ),
        )
      : store.start(
          live.map((t) => t.delivery),
          startedAt,
          readPayloadOf,
        );
    started.catch(() => undefined);
    const outcomes = confirmFirst ? await this.outcomesOf(started, live) : undefined;
    if (confirmFirst && outcomes === undefined) return;

    const runnable: Runnable[] = [];
    for (const taken of live) {
      const outcome = outcomes?.get(taken.delivery.id);
      if (outcome !== undefined && outcome.state !== 'run') continue;
      const delivery = taken.delivery;
      const bytes = delivery.payload ?? (outcome?.state === 'run' ? outcome.payload : undefined);
      try {
        if (bytes === undefined) throw new Error('the payload is gone');
        const payload = decodePayload(bytes);
        runnable.push({
          taken,
          createdAt: delivery.createdAt,
          inputs: payload.inputs,
          outputs: payload.outputs,
          rows: this.version.config.maxBatchSize === 0 ? 1 : batchRows(payload.inputs),
        });
      } catch (error) {
        logger.error({ err: error, id: delivery.id }, 'cannot read the payload of a request');
      }
    }

    const confirmed = outcomes ? Promise.resolve(outcomes) : this.outcomesOf(started, live);
    // The former gave one group of at most maxBatchSize rows: it runs as one.
    if (runnable.length > 0) await this.runGroup(runnable, startedAt, confirmed);
    const settled = await confirmed;
    if (settled === undefined) return;
    // What did not run: dropped by the start script (its entry is gone), lost, or unreadable.
    const ran = new Set(runnable.map((r) => r.taken));
    const failures: Completion[] = [];
    for (const taken of live) {
      if (ran.has(taken)) continue;
      const outcome = settled.get(taken.delivery.id);
      if (outcome?.state === 'dropped' && outcome.reason === 'expired') {
        metrics.requests.inc({ model: this.version.name, status: 'expired' });
      } else if (outcome?.state === 'lost') {
        failures.push(this.failure(taken, lostError(), startedAt));
      } else if (outcome?.state === 'run') {
        failures.push(
          this.failure(
            taken,
            { code: PAYLOAD_UNREADABLE, message: 'the request payload is gone or unreadable' },
            startedAt,
          ),
        );
      }
    }
    if (failures.length > 0)
      metrics.requests.inc({ model: this.version.name, status: 'failed' }, failures.length);
    const rest = live.filter((taken) => !ran.has(taken));
    if (failures.length > 0) await this.writeEnds(failures, rest);
    else for (const taken of rest) this.letGo(taken);
  }

  /** The start script's answers by request id; undefined (and the batch let go) when it failed. */
  private async outcomesOf(
    started: Promise<StartOutcome[]>,
    live: readonly Taken[],
  ): Promise<Map<string, StartOutcome> | undefined> {
    try {
      return new Map((await started).map((o) => [o.id, o]));
    } catch (error) {
      // Nothing is acknowledged: the leases lapse and the requests run again (here or elsewhere).
      this.options.logger.error(
        { err: error },
        'starting a batch failed; its requests return when their leases lapse',
      );
      for (const taken of live) this.letGo(taken);
      return undefined;
    }
  }

  private async runGroup(
    group: Runnable[],
    startedAt: number,
    confirmed: Promise<Map<string, StartOutcome> | undefined>,
  ): Promise<void> {
    const { session, metrics } = this.options;
    const model = this.version.name;
    const inputNames = this.version.signature.inputs.map((i) => i.name);
    metrics.batchSize.observe({ model }, group.length);
    let perRequest: TensorMap[];
    let inferMs: number;
    try {
      if (this.version.config.maxBatchSize === 0) {
        const result = await session.run(group[0]!.inputs);
        perRequest = [result.outputs];
        inferMs = result.inferMs;
      } else {
        const { pad, crop } = this.version.config;
        const stacked = stackInputs(
          group.map((r) => r.inputs),
          inputNames,
          pad,
        );
        // Read before the run: the session may take the stacked buffers over.
        const paddedSizes = paddedSizesOf(stacked, pad);
        const result = await session.run(stacked);
        perRequest = splitOutputs(
          result.outputs,
          group.map((r) => r.rows),
        );
        // A padded batch answers at its widest input's size: each request gets its own size back, so
        // neither its result nor the cache depends on its companions' shapes.
        if (paddedSizes !== undefined) {
          perRequest = perRequest.map((outputs, index) => {
            const r = group[index]!;
            return cropOutputs(pick(outputs, r.outputs), r.inputs, paddedSizes, pad, crop);
          });
        }
        inferMs = result.inferMs;
      }
    } catch (error) {
      // One poison input fails its whole batch: bisect so only it fails (bisect.ts).
      await bisectFailedRun(group, asError(error), {
        rerun: (part) => this.runGroup(part, startedAt, confirmed),
        fail: (single, singleError) => this.failOrRetry(single, singleError, startedAt, confirmed),
      });
      return;
    }

    const outcomes = await confirmed;
    if (outcomes === undefined) return;
    const now = Date.now();
    const completions: Completion[] = [];
    const outcomeCounts = { succeeded: 0, failed: 0, expired: 0 };
    group.forEach((r, index) => {
      const outcome = outcomes.get(r.taken.delivery.id);
      if (outcome?.state === 'lost') {
        completions.push(this.failure(r.taken, lostError(), startedAt));
        outcomeCounts.failed++;
        return;
      }
      // Dropped by the start script (cancelled, expired, already finished): the result is not wanted.
      if (outcome?.state !== 'run') {
        if (outcome?.state === 'dropped' && outcome.reason === 'expired') outcomeCounts.expired++;
        return;
      }
      const encoded = encodeTensorMap(pick(perRequest[index]!, r.outputs));
      // A result too large to store, publish and send whole fails instead (MAX_OUTPUT_BYTES).
      const tooLarge = encoded.byteLength > (this.options.maxOutputBytes ?? Number.POSITIVE_INFINITY);
      outcomeCounts[tooLarge ? 'failed' : 'succeeded']++;
      completions.push({
        ...this.ending(r.taken, now),
        ...(tooLarge
          ? {
              status: 'failed' as const,
              error: outputTooLarge(encoded.byteLength, this.options.maxOutputBytes),
            }
          : { status: 'succeeded' as const, outputs: encoded }),
        timings: this.timingsOf(r.taken, startedAt, inferMs),
        batchSize: group.length,
        startedAt,
      });
    });
    const written = this.writeEnds(
      completions,
      group.map((r) => r.taken),
    );
    // Bookkeeping once the results are on their way: it is not on any request's path.
    for (const [status, count] of Object.entries(outcomeCounts)) {
      if (count > 0) metrics.requests.inc({ model, status }, count);
    }
    for (const c of completions) {
      if (c.batchSize === 0) continue;
      metrics.phaseSeconds.observe({ model, phase: 'queue' }, c.timings.queueMs / 1000);
      metrics.phaseSeconds.observe({ model, phase: 'batch_wait' }, c.timings.batchWaitMs / 1000);
      metrics.phaseSeconds.observe({ model, phase: 'inference' }, inferMs / 1000);
      metrics.phaseSeconds.observe({ model, phase: 'total' }, (now - c.createdAt) / 1000);
    }
    await written;
  }

  /**
   * A failed run is tried again after a backoff while the request has attempts left; on its last
   * attempt the request ends `failed` with a stable code instead.
   */
  private async failOrRetry(
    group: Runnable[],
    error: Error,
    startedAt: number,
    confirmed: Promise<Map<string, StartOutcome> | undefined>,
  ): Promise<void> {
    const { store, metrics, logger, jobAttempts } = this.options;
    const model = this.version.name;
    logger.warn({ err: error, model, size: group.length }, 'inference failed');
    const outcomes = await confirmed;
    if (outcomes === undefined) return;
    const mine = group.filter((r) => outcomes.get(r.taken.delivery.id)?.state === 'run');
    const final = mine.filter((r) => r.taken.delivery.attempts + 1 >= jobAttempts);
    const again = mine.filter((r) => !final.includes(r));
    if (again.length > 0) {
      const now = Date.now();
      const due = (r: Runnable): number => now + RETRY_BASE_MS * 2 ** r.taken.delivery.attempts;
      try {
        await store.retryLater(
          again.map((r) => ({
            ref: r.taken.delivery,
            due: due(r),
            ...(r.taken.delivery.payload ? { payload: r.taken.delivery.payload } : {}),
          })),
        );
        const soonest = Math.min(...again.map(due));
        setTimeout(() => this.promoteDue().catch(() => undefined), Math.max(0, soonest - now) + 5).unref();
      } catch (retryError) {
        logger.error(
          { err: retryError },
          'could not schedule retries; the requests return when their leases lapse',
        );
      }
      for (const r of again) this.letGo(r.taken);
    }
    if (final.length > 0) {
      metrics.requests.inc({ model, status: 'failed' }, final.length);
      await this.writeEnds(
        final.map((r) =>
          this.failure(r.taken, { code: 'inference_failed', message: error.message }, startedAt),
        ),
        final.map((r) => r.taken),
      );
    }
    for (const r of group) if (!mine.includes(r)) this.letGo(r.taken);
  }

  /**
   * Writes a batch's ends, retrying a failed write with backoff (Redis may be restarting); once out of
   * tries the requests are let go unacknowledged: their leases lapse and they run again.
   */
  private async writeEnds(completions: Completion[], takens: readonly Taken[]): Promise<void> {
    const { store, logger } = this.options;
    for (let attempt = 1; completions.length > 0; attempt++) {
      try {
        const written = store.complete(completions);
        this.endsSent?.();
        await written;
        break;
      } catch (error) {
        if (attempt >= COMPLETE_TRIES) {
          logger.error(
            { err: error },
            'writing results failed; the requests run again once their leases lapse',
          );
          break;
        }
        logger.warn({ err: error, attempt }, 'writing results failed; trying again');
        await new Promise((resolve) => setTimeout(resolve, 100 * 4 ** (attempt - 1)));
      }
    }
    for (const taken of takens) this.letGo(taken);
  }

  private ending(
    taken: Taken,
    now: number,
  ): Pick<Completion, 'id' | 'model' | 'version' | 'createdAt' | 'queueEntry' | 'now'> {
    const { delivery } = taken;
    return {
      id: delivery.id,
      model: this.version.name,
      version: this.version.version,
      createdAt: delivery.createdAt,
      queueEntry: { stream: delivery.stream, entry: delivery.entry },
      now,
    };
  }

  private timingsOf(taken: Taken, startedAt: number, inferMs: number): Completion['timings'] {
    return {
      queueMs: Math.max(0, startedAt - taken.delivery.createdAt),
      batchWaitMs: Math.max(0, startedAt - taken.arrivedAt),
      inferMs,
    };
  }

  private failure(taken: Taken, error: RequestError, startedAt: number): Completion {
    return {
      ...this.ending(taken, Date.now()),
      status: 'failed',
      error,
      timings: this.timingsOf(taken, startedAt, 0),
      batchSize: 0,
    };
  }
}

/** Input name -> its padded axis's size in the stacked batch; undefined when nothing is padded. */
function paddedSizesOf(
  stacked: TensorMap,
  pad: ModelVersion['config']['pad'],
): Record<string, number> | undefined {
  const names = Object.keys(pad);
  if (names.length === 0) return undefined;
  const sizes: Record<string, number> = {};
  for (const name of names) sizes[name] = stacked[name]!.shape[pad[name]!.axis]!;
  return sizes;
}

function handKey(delivery: Delivery): string {
  return `${delivery.stream} ${delivery.entry}`;
}

function lostError(): RequestError {
  return {
    code: WORKER_LOST,
    message: 'the workers running this request stopped before finishing it too many times',
  };
}

function outputTooLarge(bytes: number, limit: number | undefined): RequestError {
  return {
    code: 'output_too_large',
    message: `the outputs take ${bytes} bytes, more than the ${limit} allowed (MAX_OUTPUT_BYTES); request fewer outputs or smaller inputs`,
  };
}

function pick(outputs: TensorMap, names: string[] | undefined): TensorMap {
  if (!names) return outputs;
  const picked: TensorMap = {};
  for (const name of names) {
    const tensor = outputs[name];
    if (tensor) picked[name] = tensor;
  }
  return picked;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
