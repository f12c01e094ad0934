/**
 * Serves one pipeline version's queue (docs/pipelines.md): each request is taken, started, run
 * through the pipeline's steps (processors in the thread pool, model steps through their models'
 * queues) and ended with its outputs and per-step timings, many requests at once. A pipeline request
 * is never batched itself: its model steps are, with every other caller of those models.
 */
import { dirname } from 'node:path';
import type { Logger, Metrics, RequestFailure, Tracing } from '@inferq/observability';
import { type PipelineResult, type PipelineSpec, runPipeline } from '@inferq/pipeline';
import { decodePayload, encodeTensorMap, type RequestError, type TensorMap } from '@inferq/protocol';
import type { ModelVersion } from '@inferq/repository';
import { type Delivery, deliveryKey, type QueueIntake } from '@inferq/store';
import { BatchEnds, lostError, outputTooLarge, PAYLOAD_UNREADABLE } from '../batch-ends.ts';
import type { Taken } from '../taken.ts';
import type { ModelSteps } from './model-steps.ts';
import type { ProcessorPool } from './processor-pool.ts';

/** Error code of a pipeline request one of whose steps failed; the message names the step. */
export const PIPELINE_STEP_FAILED = 'pipeline_step_failed';

/** Pipeline requests one worker runs at once, per pipeline version. */
export const PIPELINE_CONCURRENCY = 32;

/** How often the records of running pipeline requests are read, to stop those cancelled meanwhile. */
const CANCEL_CHECK_MS = 500;

/** Why a run stopped: its request was cancelled (its record is already terminal). */
class RequestCancelled extends Error {
  override readonly name = 'RequestCancelled';
}

export interface PipelineWorkerOptions {
  version: ModelVersion & { pipeline: PipelineSpec };
  intake: QueueIntake;
  pool: ProcessorPool;
  modelSteps: ModelSteps;
  /** The status a request's record has now (undefined: gone): how the worker learns of a cancel. */
  statusOf(id: string): Promise<string | undefined>;
  /** Resolves the tenant and priority of a request from its record. */
  parentOf(id: string): Promise<{ tenant: string; useCache: boolean; priority?: number } | undefined>;
  jobAttempts: number;
  maxOutputBytes?: number;
  /** OpenTelemetry spans of each run (an OTLP endpoint is configured); absent: off. */
  tracing?: Tracing;
  metrics: Metrics;
  logger: Logger;
}

export class PipelineWorker {
  readonly version: ModelVersion & { pipeline: PipelineSpec };
  private readonly options: PipelineWorkerOptions;
  private readonly ends: BatchEnds;
  private readonly inHand = new Map<string, Taken>();
  private readonly running = new Set<Promise<void>>();
  /** Each running request's abort: a cancel stops its steps (its model steps still queued are cancelled). */
  private readonly runs = new Map<string, AbortController>();
  private cancelCheck: NodeJS.Timeout | undefined;
  private stopping = false;

  constructor(options: PipelineWorkerOptions) {
    this.options = options;
    this.version = options.version;
    this.ends = new BatchEnds({
      version: options.version,
      intake: options.intake,
      jobAttempts: options.jobAttempts,
      metrics: options.metrics,
      logger: options.logger,
      letGo: (taken) => this.letGo(taken),
      endsSent: () => undefined,
    });
  }

  start(): void {
    this.cancelCheck = setInterval(() => void this.stopCancelled(), CANCEL_CHECK_MS);
    this.cancelCheck.unref();
    this.options.intake.open({
      deliver: (deliveries) => {
        for (const delivery of deliveries) this.take(delivery);
      },
      revoked: (delivery) => {
        const taken = this.inHand.get(deliveryKey(delivery));
        if (taken !== undefined) taken.revoked = true;
      },
    });
  }

  /** Stops taking requests and lets the running ones finish (their model steps are in other queues). */
  async close(): Promise<void> {
    this.stopping = true;
    await this.options.intake.close();
    await Promise.all(this.running);
    clearInterval(this.cancelCheck);
    await this.options.intake.dispose();
  }

  /** Aborts the runs whose requests were cancelled (DELETE on a running pipeline request). */
  private async stopCancelled(): Promise<void> {
    for (const [id, run] of this.runs) {
      const status = await this.options.statusOf(id).catch(() => 'running');
      if (status !== 'running' && !run.signal.aborted)
        run.abort(new RequestCancelled(`request ${id} was cancelled`));
    }
  }

  private take(delivery: Delivery): void {
    const taken: Taken = { delivery, arrivedAt: Date.now(), revoked: false, groupKey: '', rows: 1 };
    this.inHand.set(deliveryKey(delivery), taken);
    if (this.stopping) {
      void this.options.intake.handBack([delivery]).finally(() => this.letGo(taken));
      return;
    }
    const run = this.run(taken).catch((error: unknown) => {
      this.options.logger.error({ err: error, id: delivery.id }, 'running a pipeline request failed');
      this.letGo(taken);
    });
    this.running.add(run);
    void run.finally(() => this.running.delete(run));
  }

  private letGo(taken: Taken): void {
    this.inHand.delete(deliveryKey(taken.delivery));
    this.options.intake.release(taken.delivery);
  }

  private async run(taken: Taken): Promise<void> {
    const { intake, metrics, logger } = this.options;
    const pipeline = this.version.name;
    const { delivery } = taken;
    if (taken.revoked) return this.letGo(taken);
    const startedAt = Date.now();
    const outcomes = await this.ends.outcomesOf(
      intake.start([delivery], startedAt, delivery.payload ? new Set() : new Set([delivery.id])),
      [taken],
    );
    const outcome = outcomes?.get(delivery.id);
    if (outcome === undefined) return;
    if (outcome.state === 'lost') {
      metrics.requests.inc({ model: pipeline, status: 'failed' });
      return this.ends.write([this.ends.failure(taken, lostError(), startedAt)], [taken]);
    }
    if (outcome.state !== 'run') {
      if (outcome.reason === 'expired') metrics.requests.inc({ model: pipeline, status: 'expired' });
      return this.letGo(taken);
    }
    let inputs: TensorMap;
    try {
      const bytes = delivery.payload ?? outcome.payload;
      if (bytes === undefined) throw new Error('the payload is gone');
      inputs = decodePayload(bytes).inputs;
    } catch (error) {
      logger.error({ err: error, id: delivery.id }, 'cannot read the payload of a request');
      metrics.requests.inc({ model: pipeline, status: 'failed' });
      const unreadable = { code: PAYLOAD_UNREADABLE, message: 'the request payload is gone or unreadable' };
      return this.ends.write([this.ends.failure(taken, unreadable, startedAt)], [taken]);
    }

    const parent = await this.options.parentOf(delivery.id);
    // Its model steps are requests of the same trace: children of the run's span, else of its context.
    const span = this.options.tracing?.startPipeline(pipeline, this.version.version, delivery, startedAt);
    const trace = span?.trace ?? delivery.trace;
    let runFailure: RequestFailure | undefined;
    let result: PipelineResult;
    const began = performance.now();
    const run = new AbortController();
    this.runs.set(delivery.id, run);
    try {
      result = await runPipeline(
        this.version.pipeline,
        inputs,
        {
          runProcessor: (step, stepInputs, signal) => {
            if (step.kind !== 'processor') throw new Error(`step '${step.name}' is not a processor`);
            return this.options.pool.run(
              {
                processor: step.processor,
                inputs: stepInputs,
                options: step.options,
                dir: this.dir,
                ...(step.module === undefined ? {} : { module: step.module }),
              },
              signal,
            );
          },
          runModel: (step, stepInputs, signal) => {
            if (step.kind !== 'model') throw new Error(`step '${step.name}' is not a model`);
            return this.options.modelSteps.run(
              step.model,
              step.version,
              stepInputs,
              {
                id: delivery.id,
                tenant: parent?.tenant ?? 'public',
                useCache: parent?.useCache ?? true,
                ...(delivery.deadline === undefined ? {} : { deadline: delivery.deadline }),
                ...(parent?.priority === undefined ? {} : { priority: parent.priority }),
                ...(trace === undefined ? {} : { trace }),
              },
              signal,
            );
          },
        },
        { signal: run.signal },
      );
    } catch (error) {
      if (error instanceof RequestCancelled) {
        // Its record is terminal already: this write only acknowledges its queue entry.
        metrics.requests.inc({ model: pipeline, status: 'cancelled' });
        const cancelled = { code: 'cancelled', message: error.message };
        runFailure = cancelled;
        return this.ends.write([this.ends.failure(taken, cancelled, startedAt)], [taken]);
      }
      const failure = failureOf(error);
      runFailure = failure;
      logger.warn({ id: delivery.id, pipeline, error: failure.message }, 'pipeline request failed');
      metrics.requests.inc({ model: pipeline, status: 'failed' });
      return this.ends.write([this.ends.failure(taken, failure, startedAt)], [taken]);
    } finally {
      this.runs.delete(delivery.id);
      span?.end(runFailure);
    }
    const totalMs = performance.now() - began;
    for (const [step, timing] of Object.entries(result.steps)) {
      metrics.pipelineStepSeconds.observe({ pipeline, step, kind: timing.kind }, timing.ms / 1000);
    }
    const encoded = encodeTensorMap(result.outputs);
    if (encoded.byteLength > (this.options.maxOutputBytes ?? Number.POSITIVE_INFINITY)) {
      metrics.requests.inc({ model: pipeline, status: 'failed' });
      const tooLarge = outputTooLarge(encoded.byteLength, this.options.maxOutputBytes);
      return this.ends.write([this.ends.failure(taken, tooLarge, startedAt)], [taken]);
    }
    metrics.requests.inc({ model: pipeline, status: 'succeeded' });
    return this.ends.write(
      [
        {
          ...this.ends.ending(taken, Date.now()),
          status: 'succeeded',
          outputs: encoded,
          timings: { ...this.ends.timingsOf(taken, startedAt, totalMs), steps: result.steps },
          batchSize: 1,
          startedAt,
        },
      ],
      [taken],
    );
  }

  /** The pipeline version's folder: relative file options (a dictionary) are read from it. */
  private get dir(): string {
    return dirname(this.version.path);
  }
}

/**
 * What a failed pipeline request's record says: a PipelineStepError's message names the step, a
 * PipelineTensorError's the tensor.
 */
function failureOf(error: unknown): RequestError {
  return { code: PIPELINE_STEP_FAILED, message: error instanceof Error ? error.message : String(error) };
}
