import type { ShapedCosts } from '@inferq/batcher';
import type { BatchSpan, Logger, Metrics, Tracing } from '@inferq/observability';
import { decodePayload, encodeTensorMap, type TensorMap } from '@inferq/protocol';
import type { ModelVersion } from '@inferq/repository';
import { batchRows, cropOutputs, type ModelSession, splitOutputs, stackInputs } from '@inferq/runtime';
import type { Completion, QueueIntake, StartOutcome } from '@inferq/store';
import {
  type BatchEnds,
  type Confirmed,
  lostError,
  outputTooLarge,
  PAYLOAD_UNREADABLE,
} from './batch-ends.ts';
import { bisectFailedRun } from './bisect.ts';
import type { VersionLiveStats } from './live-stats.ts';
import type { LetGo, Runnable, Taken } from './taken.ts';

export interface BatchRunnerOptions {
  version: ModelVersion;
  session: ModelSession;
  intake: QueueIntake;
  ends: BatchEnds;
  /** Largest MessagePack outputs of one request; larger ones end `failed` (`output_too_large`). Default: no cap. */
  maxOutputBytes?: number;
  /** Learns each run's time by its rows, for batches of the shape it was measured at (batch-costs.ts). */
  costs?: ShapedCosts;
  /** OpenTelemetry spans of each batch (an OTLP endpoint is configured); absent: off, and no cost. */
  tracing?: Tracing;
  metrics: Metrics;
  /** The status page's figures of this version (live-stats.ts). */
  liveStats?: VersionLiveStats;
  logger: Logger;
  letGo: LetGo;
}

/**
 * Runs one formed batch: starts its requests (start script), reads their payloads, stacks them, runs
 * the model once, splits and crops the outputs per request, and hands the ends to `BatchEnds`.
 */
export class BatchRunner {
  private readonly options: BatchRunnerOptions;
  private readonly version: ModelVersion;

  constructor(options: BatchRunnerOptions) {
    this.options = options;
    this.version = options.version;
  }

  async run(batch: Taken[]): Promise<void> {
    const startedAt = Date.now();
    const tracing = this.options.tracing;
    if (tracing === undefined) return this.runStarted(batch, startedAt, undefined);
    // The batch span links every request's context; each request's queue wait ends here.
    const requests = batch.filter((t) => !t.revoked).map((t) => t.delivery);
    const span = tracing.startBatch(this.version.name, this.version.version, requests, startedAt);
    try {
      await this.runStarted(batch, startedAt, span);
    } finally {
      span.end();
    }
  }

  private async runStarted(batch: Taken[], startedAt: number, span: BatchSpan | undefined): Promise<void> {
    const { intake, logger, metrics, ends, letGo } = this.options;
    const live = batch.filter((t) => !t.revoked);
    for (const taken of batch) if (taken.revoked) letGo(taken);
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
      : intake.start(
          live.map((t) => t.delivery),
          startedAt,
          readPayloadOf,
        );
    started.catch(() => undefined);
    const outcomes = confirmFirst ? await ends.outcomesOf(started, live) : undefined;
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
          startSkipped: skipStart,
        });
      } catch (error) {
        logger.error({ err: error, id: delivery.id }, 'cannot read the payload of a request');
      }
    }

    const confirmed = outcomes ? Promise.resolve(outcomes) : ends.outcomesOf(started, live);
    // The former gave one group of at most maxBatchSize rows: it runs as one.
    if (runnable.length > 0) await this.runGroup(runnable, startedAt, confirmed, span);
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
        failures.push(ends.failure(taken, lostError(), startedAt));
      } else if (outcome?.state === 'run') {
        failures.push(
          ends.failure(
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
    if (failures.length > 0) await ends.write(failures, rest);
    else for (const taken of rest) letGo(taken);
  }

  private async runGroup(
    group: Runnable[],
    startedAt: number,
    confirmed: Confirmed,
    span: BatchSpan | undefined,
  ): Promise<void> {
    const { session, metrics, ends } = this.options;
    const model = this.version.name;
    metrics.batchSize.observe({ model }, group.length);
    let perRequest: TensorMap[];
    let inferMs: number;
    const runStartedAt = span === undefined ? 0 : Date.now();
    try {
      ({ perRequest, inferMs } = await this.infer(group, session));
      span?.inference(
        group.map((r) => r.taken.delivery),
        runStartedAt,
        Date.now(),
      );
      const costs = this.options.costs;
      if (costs !== undefined && group[0]?.taken.groupKey === costs.groupKey) {
        costs.costs.observe(
          group.reduce((rows, r) => rows + r.rows, 0),
          inferMs,
        );
      }
    } catch (error) {
      span?.failed(asError(error), group.length);
      // One poison input fails its whole batch: bisect so only it fails (bisect.ts).
      await bisectFailedRun(group, asError(error), {
        rerun: (part) => this.runGroup(part, startedAt, confirmed, span),
        fail: (single, singleError) => ends.failOrRetry(single, singleError, startedAt, confirmed),
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
        completions.push(ends.failure(r.taken, lostError(), startedAt));
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
        ...ends.ending(r.taken, now),
        ...(tooLarge
          ? {
              status: 'failed' as const,
              error: outputTooLarge(encoded.byteLength, this.options.maxOutputBytes),
            }
          : { status: 'succeeded' as const, outputs: encoded }),
        timings: ends.timingsOf(r.taken, startedAt, inferMs),
        batchSize: group.length,
        startedAt,
      });
    });
    const written = ends.write(
      completions,
      group.map((r) => r.taken),
    );
    // Bookkeeping once the results are on their way: it is not on any request's path.
    this.options.liveStats?.ranBatch(group.length, now);
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
    const objective = this.version.config.latencyObjectiveMs;
    if (objective !== undefined) {
      const succeeded = completions.filter((c) => c.status === 'succeeded' && c.batchSize > 0);
      const met = succeeded.filter((c) => now - c.createdAt <= objective).length;
      this.countObjective(met, succeeded.length - met);
    }
    await written;
    // What the batch cost besides its run (scripts, stacking, splitting): the cost model's overhead.
    this.options.costs?.costs.observeOverhead(Math.max(0, Date.now() - startedAt - inferMs));
  }

  /**
   * Requests that met and missed the version's latency objective (latencyObjectiveMs), succeeded ones
   * by their time from acceptance to their end (expired ones: inferq_requests_total{status="expired"}).
   */
  private countObjective(met: number, missed: number): void {
    if (this.version.config.latencyObjectiveMs === undefined) return;
    const model = this.version.name;
    if (met > 0) this.options.metrics.latencyObjective.inc({ model, outcome: 'met' }, met);
    if (missed > 0) this.options.metrics.latencyObjective.inc({ model, outcome: 'missed' }, missed);
  }

  /** One model run for the group: stacked, run, split per request (and cropped when padded). */
  private async infer(
    group: Runnable[],
    session: ModelSession,
  ): Promise<{ perRequest: TensorMap[]; inferMs: number }> {
    if (this.version.config.maxBatchSize === 0) {
      const result = await session.run(group[0]!.inputs);
      return { perRequest: [result.outputs], inferMs: result.inferMs };
    }
    const { pad, crop } = this.version.config;
    const inputNames = this.version.signature.inputs.map((i) => i.name);
    const stacked = stackInputs(
      group.map((r) => r.inputs),
      inputNames,
      pad,
    );
    // Read before the run: the session may take the stacked buffers over.
    const paddedSizes = paddedSizesOf(stacked, pad);
    const result = await session.run(stacked);
    let perRequest = splitOutputs(
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
    return { perRequest, inferMs: result.inferMs };
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
