/**
 * Serves one pipeline version's queue (docs/pipelines.md): each request is taken, started, run
 * through the pipeline's steps (processors in the thread pool, model steps through their models'
 * queues) and ended with its outputs and per-step timings, many requests at once. A pipeline request
 * is never batched itself: its model steps are, with every other caller of those models.
 */
import type { Logger, Metrics } from '@inferq/observability';
import {
  type PipelineResult,
  type PipelineSpec,
  PipelineStepError,
  PipelineTensorError,
  runPipeline,
} from '@inferq/pipeline';
import { decodePayload, encodeTensorMap, type RequestError, type TensorMap } from '@inferq/protocol';
import type { ModelVersion } from '@inferq/repository';
import { type Delivery, deliveryKey, type QueueIntake } from '@inferq/store';
import { BatchEnds, lostError, PAYLOAD_UNREADABLE } from '../batch-ends.ts';
import type { Taken } from '../taken.ts';
import type { ModelSteps } from './model-steps.ts';
import type { ProcessorPool } from './processor-pool.ts';

/** Error code of a pipeline request one of whose steps failed; the message names the step. */
export const PIPELINE_STEP_FAILED = 'pipeline_step_failed';

/** Pipeline requests one worker runs at once, per pipeline version. */
export const PIPELINE_CONCURRENCY = 32;

export interface PipelineWorkerOptions {
  version: ModelVersion & { pipeline: PipelineSpec };
  intake: QueueIntake;
  pool: ProcessorPool;
  modelSteps: ModelSteps;
  /** Resolves the tenant and priority of a request from its record. */
  parentOf(id: string): Promise<{ tenant: string; useCache: boolean; priority?: number } | undefined>;
  jobAttempts: number;
  maxOutputBytes?: number;
  metrics: Metrics;
  logger: Logger;
}

export class PipelineWorker {
  readonly version: ModelVersion & { pipeline: PipelineSpec };
  private readonly options: PipelineWorkerOptions;
  private readonly ends: BatchEnds;
  private readonly inHand = new Map<string, Taken>();
  private readonly running = new Set<Promise<void>>();
  /** Aborts the steps of every request still running when the worker is closed for good. */
  private readonly stopAll = new AbortController();
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
    await this.options.intake.dispose();
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
    let result: PipelineResult;
    const began = performance.now();
    try {
      result = await runPipeline(
        this.version.pipeline,
        inputs,
        {
          runProcessor: (step, stepInputs, signal) => {
            if (step.kind !== 'processor') throw new Error(`step '${step.name}' is not a processor`);
            return this.options.pool.run(
              { processor: step.processor, inputs: stepInputs, options: step.options, dir: this.dir },
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
              },
              signal,
            );
          },
        },
        { signal: this.stopAll.signal },
      );
    } catch (error) {
      const failure = failureOf(error);
      logger.warn({ id: delivery.id, pipeline, error: failure.message }, 'pipeline request failed');
      metrics.requests.inc({ model: pipeline, status: 'failed' });
      return this.ends.write([this.ends.failure(taken, failure, startedAt)], [taken]);
    }
    const totalMs = performance.now() - began;
    for (const [step, timing] of Object.entries(result.steps)) {
      metrics.pipelineStepSeconds.observe({ pipeline, step, kind: timing.kind }, timing.ms / 1000);
    }
    const encoded = encodeTensorMap(result.outputs);
    const limit = this.options.maxOutputBytes ?? Number.POSITIVE_INFINITY;
    if (encoded.byteLength > limit) {
      metrics.requests.inc({ model: pipeline, status: 'failed' });
      const tooLarge = {
        code: 'output_too_large',
        message: `the outputs take ${encoded.byteLength} bytes, more than the ${limit} allowed (MAX_OUTPUT_BYTES)`,
      };
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
    return this.version.path.slice(0, this.version.path.lastIndexOf('/'));
  }
}

/** What a failed pipeline request's record says: which step, and why. */
function failureOf(error: unknown): RequestError {
  if (error instanceof PipelineStepError) return { code: PIPELINE_STEP_FAILED, message: error.message };
  if (error instanceof PipelineTensorError) return { code: PIPELINE_STEP_FAILED, message: error.message };
  return { code: PIPELINE_STEP_FAILED, message: error instanceof Error ? error.message : String(error) };
}
