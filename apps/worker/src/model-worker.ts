import { BatchFormer } from '@inferq/batcher';
import type { Logger, Metrics } from '@inferq/observability';
import { decodePayload, encodeTensorMap, type TensorMap } from '@inferq/protocol';
import {
  batchGroupKey,
  batchRows,
  type ModelSession,
  type ModelVersion,
  splitOutputs,
  stackInputs,
} from '@inferq/runtime';
import {
  type Completion,
  INFER_JOB_NAME,
  type InferJobData,
  queueName,
  type RequestStore,
} from '@inferq/store';
import { type Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { failAbandonedRequests } from './abandoned.ts';
import { bisectFailedRun } from './bisect.ts';
import { handBackUnstarted } from './hand-back.ts';

/**
 * One request of a job, handed to the batch former. A job carries one request (a single submit) or
 * several (a bulk submit); its processor promise settles once every request of it has.
 */
interface PendingJob {
  job: Job<InferJobData>;
  /** The request id. */
  id: string;
  arrivedAt: number;
  settle(error?: Error): void;
}

/** A claimed request ready for the model. */
interface Runnable {
  pending: PendingJob;
  createdAt: number;
  inputs: TensorMap;
  outputs: string[] | undefined;
  rows: number;
}

export interface ModelWorkerOptions {
  version: ModelVersion;
  session: ModelSession;
  store: RequestStore;
  connection: Redis;
  prefix: string;
  jobAttempts: number;
  /** Largest MessagePack outputs of one request; larger ones end `failed` (`output_too_large`). Default: no cap. */
  maxOutputBytes?: number;
  metrics: Metrics;
  logger: Logger;
}

/**
 * Serves one model version: BullMQ hands jobs over one by one (up to two batches' worth at a time),
 * the batch former groups them, and each batch is claimed, stacked, run once and completed in one
 * pipelined write. The processor promise of every job settles only once its result is stored, so
 * BullMQ keeps the job locked (and recoverable if this process dies) until then.
 */
export class ModelWorker {
  readonly version: ModelVersion;
  private readonly options: ModelWorkerOptions;
  private readonly former: BatchFormer<PendingJob>;
  private readonly bullWorker: Worker<InferJobData>;
  /** Set by close(): batches formed from now on go back to the queue instead of running. */
  private stopping = false;

  constructor(options: ModelWorkerOptions) {
    this.options = options;
    this.version = options.version;
    const { maxBatchSize, maxBatchDelayMs } = options.version.config;
    this.former = new BatchFormer<PendingJob>(
      { maxBatchSize, maxBatchDelayMs, dispatchWhenIdle: true },
      {
        run: (batch) => (this.stopping ? this.handBackOrRun(batch) : this.runBatch(batch)),
        // Shapes are only known once payloads are claimed; runBatch splits a batch by shape then.
        groupKey: () => '',
        // No idle signal from BullMQ is needed: with dispatchWhenIdle a lone request runs at once.
      },
    );
    this.bullWorker = new Worker<InferJobData>(
      queueName(options.version.name, options.version.version),
      (job) => this.accept(job),
      {
        connection: options.connection,
        prefix: options.prefix,
        autorun: false,
        // One batch running and the next one forming.
        concurrency: Math.max(2, maxBatchSize * 2),
        // Short stalled-job timings so a crashed worker's jobs are re-run within seconds, not minutes.
        lockDuration: 10_000,
        stalledInterval: 5_000,
        maxStalledCount: 2,
      },
    );
    this.bullWorker.on('error', (error) => options.logger.error({ err: error }, 'queue worker error'));
    // BullMQ may fail a job for good with no result written (abandoned.ts); one that stalled more
    // than maxStalledCount times never even reaches accept(). Its requests must still end.
    this.bullWorker.on('failed', (job, error) => {
      if (job === undefined || job.finishedOn === undefined) return;
      const { store, metrics, logger } = options;
      const deps = { store, model: this.version.name, version: this.version.version, metrics, logger };
      const cause = { stalled: error.name === 'UnrecoverableError', reason: error.message };
      failAbandonedRequests(requestIdsOf(job.data), cause, deps).catch((failure: unknown) =>
        logger.error({ err: failure, jobId: job.id }, 'could not fail the requests of an abandoned job'),
      );
    });
  }

  start(): void {
    void this.bullWorker.run();
  }

  /** Stops taking jobs, lets the running batch finish, hands formed-but-unstarted batches back to the queue. */
  async close(): Promise<void> {
    this.stopping = true;
    await this.bullWorker.close();
    await this.former.drain();
  }

  private async handBackOrRun(batch: PendingJob[]): Promise<void> {
    const remaining = await handBackUnstarted(
      batch,
      (job) => requestIdsOf(job.data as InferJobData).length,
      this.options.logger,
    );
    if (remaining.length > 0) await this.runBatch(remaining);
  }

  private async accept(job: Job<InferJobData>): Promise<void> {
    if (job.name !== INFER_JOB_NAME) throw new Error(`unknown job name ${job.name}`);
    const arrivedAt = Date.now();
    const settled = requestIdsOf(job.data).map(
      (id) =>
        new Promise<void>((resolve, reject) => {
          this.former.add({ job, id, arrivedAt, settle: (error) => (error ? reject(error) : resolve()) });
        }),
    );
    // Wait for all: a job that failed while some of its requests still run would be retried under them.
    const failure = (await Promise.allSettled(settled)).find((result) => result.status === 'rejected');
    if (failure !== undefined) throw failure.reason;
  }

  private async runBatch(batch: PendingJob[]): Promise<void> {
    const { store, logger } = this.options;
    const dispatchedAt = Date.now();
    const { maxBatchSize } = this.version.config;
    let runnable: Runnable[];
    try {
      const claims = await store.claim(
        batch.map((p) => p.id),
        dispatchedAt,
      );
      runnable = [];
      claims.forEach((claim, index) => {
        const pending = batch[index]!;
        if (claim.state === 'dropped') {
          if (claim.reason === 'expired')
            this.options.metrics.requests.inc({ model: this.version.name, status: 'expired' });
          pending.settle();
          return;
        }
        const payload = decodePayload(claim.payload);
        runnable.push({
          pending,
          createdAt: claim.createdAt,
          inputs: payload.inputs,
          outputs: payload.outputs,
          rows: maxBatchSize === 0 ? 1 : batchRows(payload.inputs),
        });
      });
    } catch (error) {
      logger.error({ err: error }, 'claiming a batch failed');
      for (const p of batch) p.settle(asError(error));
      return;
    }

    for (const group of this.partition(runnable)) {
      await this.runGroup(group, dispatchedAt);
    }
  }

  /** Requests that cannot share one session run: different non-batch dims, or a model without a batch axis. */
  private partition(runnable: Runnable[]): Runnable[][] {
    const { maxBatchSize } = this.version.config;
    if (maxBatchSize === 0) return runnable.map((r) => [r]);
    const groups = new Map<string, Runnable[][]>();
    for (const r of runnable) {
      const key = batchGroupKey(r.inputs, this.version.config.pad);
      const chunks = groups.get(key) ?? [[]];
      groups.set(key, chunks);
      let chunk = chunks[chunks.length - 1]!;
      const rowsInChunk = chunk.reduce((sum, c) => sum + c.rows, 0);
      if (chunk.length > 0 && rowsInChunk + r.rows > maxBatchSize) {
        chunk = [];
        chunks.push(chunk);
      }
      chunk.push(r);
    }
    return [...groups.values()].flat();
  }

  private async runGroup(group: Runnable[], dispatchedAt: number): Promise<void> {
    const { session, store, metrics, logger } = this.options;
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
        const stacked = stackInputs(
          group.map((r) => r.inputs),
          inputNames,
          this.version.config.pad,
        );
        const result = await session.run(stacked);
        perRequest = splitOutputs(
          result.outputs,
          group.map((r) => r.rows),
        );
        inferMs = result.inferMs;
      }
    } catch (error) {
      // One poison input fails its whole batch: bisect so only it fails (bisect.ts).
      await bisectFailedRun(group, asError(error), {
        rerun: (part) => this.runGroup(part, dispatchedAt),
        fail: (single, singleError) => this.failOrRetry(single, singleError, dispatchedAt),
      });
      return;
    }

    const now = Date.now();
    const completions: Completion[] = group.map((r, index) => {
      const outputs = pick(perRequest[index]!, r.outputs);
      const timings = {
        queueMs: Math.max(0, dispatchedAt - r.createdAt),
        batchWaitMs: Math.max(0, dispatchedAt - r.pending.arrivedAt),
        inferMs,
      };
      metrics.phaseSeconds.observe({ model, phase: 'queue' }, timings.queueMs / 1000);
      metrics.phaseSeconds.observe({ model, phase: 'batch_wait' }, timings.batchWaitMs / 1000);
      metrics.phaseSeconds.observe({ model, phase: 'inference' }, inferMs / 1000);
      metrics.phaseSeconds.observe({ model, phase: 'total' }, (now - r.createdAt) / 1000);
      const encoded = encodeTensorMap(outputs);
      // A result too large to store, publish and send whole fails instead (MAX_OUTPUT_BYTES).
      const tooLarge = encoded.byteLength > (this.options.maxOutputBytes ?? Number.POSITIVE_INFINITY);
      metrics.requests.inc({ model, status: tooLarge ? 'failed' : 'succeeded' });
      return {
        id: r.pending.id,
        model,
        version: this.version.version,
        createdAt: r.createdAt,
        ...(tooLarge
          ? {
              status: 'failed' as const,
              error: outputTooLarge(encoded.byteLength, this.options.maxOutputBytes),
            }
          : { status: 'succeeded' as const, outputs: encoded }),
        timings,
        batchSize: group.length,
        startedAt: dispatchedAt,
        now,
      };
    });
    try {
      await store.complete(completions);
    } catch (error) {
      logger.error({ err: error }, 'writing results failed; the jobs will be retried');
      for (const r of group) r.pending.settle(asError(error));
      return;
    }
    for (const r of group) r.pending.settle();
  }

  /**
   * A failed run is retried by BullMQ (with backoff) while a job has attempts left; on its last
   * attempt the request ends `failed` with a stable code instead.
   */
  private async failOrRetry(group: Runnable[], error: Error, dispatchedAt: number): Promise<void> {
    const { store, metrics, logger, jobAttempts } = this.options;
    const model = this.version.name;
    logger.warn({ err: error, model, size: group.length }, 'inference failed');
    const final = group.filter((r) => r.pending.job.attemptsMade + 1 >= jobAttempts);
    const now = Date.now();
    if (final.length > 0) {
      const completions: Completion[] = final.map((r) => ({
        id: r.pending.id,
        model,
        version: this.version.version,
        createdAt: r.createdAt,
        status: 'failed',
        error: { code: 'inference_failed', message: error.message },
        timings: {
          queueMs: Math.max(0, dispatchedAt - r.createdAt),
          batchWaitMs: Math.max(0, dispatchedAt - r.pending.arrivedAt),
          inferMs: 0,
        },
        batchSize: group.length,
        now,
      }));
      try {
        await store.complete(completions);
        metrics.requests.inc({ model, status: 'failed' }, final.length);
      } catch (writeError) {
        for (const r of group) r.pending.settle(asError(writeError));
        return;
      }
    }
    for (const r of group) r.pending.settle(final.includes(r) ? undefined : error);
  }
}

function outputTooLarge(bytes: number, limit: number | undefined): { code: string; message: string } {
  return {
    code: 'output_too_large',
    message: `the outputs take ${bytes} bytes, more than the ${limit} allowed (MAX_OUTPUT_BYTES); request fewer outputs or smaller inputs`,
  };
}

function requestIdsOf(data: InferJobData): string[] {
  return 'ids' in data ? data.ids : [data.id];
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
