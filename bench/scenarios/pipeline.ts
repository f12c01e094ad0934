/**
 * A pipeline under load (docs/pipelines.md): one image sent over and over, each request with
 * `"cache": false` so that neither the pipeline nor its model steps answer from the cache or
 * coalesce, each answer checked against the text the image reads.
 */
import type { InferqDeployment } from '../contenders/inferq.ts';
import { type ApiClient, describeRefusal, type HttpAnswer } from '../lib/http.ts';
import { type Outcome, type ProgressSink, runClosedLoop } from '../lib/load.ts';
import type { BenchPipeline } from '../lib/models.ts';
import type { PipelineLoadResult, PipelineModelBatches, PipelineStepTiming } from '../lib/results.ts';
import { workerBatchCounters } from './inferq.ts';
import type { BatchCounters } from './load-curves.ts';

/** The image the `ocr` scenario sends: the repository's own example (README, docs/pipelines.md). */
export const OCR_IMAGE = 'examples/ocr/hello.png';
/** What `OCR_IMAGE` reads, line by line. */
export const OCR_LINES = ['inferq reads text', 'line by line, in order', 'Total: 42.50 EUR'];
/**
 * Clients of the saturation measurement: the recogniser's `maxBatchSize`. Each line of an image has
 * its own width, so the recogniser batches the same line of different images, and 8 images in flight
 * can fill its batches (and the detector's of 4). On the bench's 2 cores throughput stops growing
 * from 4 clients on (docs/performance.md, "The ocr pipeline"); more only lengthen the latency.
 */
export const PIPELINE_CLIENTS = 8;
/** `Prefer: wait=N`: far beyond any pipeline latency seen. */
export const PIPELINE_WAIT_SECONDS = 60;

/**
 * A JSON request of one uint8 input holding the file's bytes as base64, with `"cache": false`: the
 * same image every time, and every time a full run (no cache hit, no coalescing, none for its model
 * steps either).
 */
export function pipelineJsonBody(inputName: string, bytes: Uint8Array): Buffer {
  return Buffer.from(
    JSON.stringify({
      inputs: {
        [inputName]: {
          dtype: 'uint8',
          shape: [bytes.byteLength],
          data: { b64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') },
        },
      },
      cache: false,
    }),
  );
}

/** One step of a record's `timings.steps`. */
export interface StepTimings {
  kind?: string;
  ms?: number;
  items?: number;
  queueMs?: number;
  inferMs?: number;
  batchSizes?: number[];
}

/** What one answer came to, and the timings of its record when it succeeded. */
export interface PipelineAnswer {
  outcome: Outcome;
  queueMs?: number;
  steps?: Record<string, StepTimings>;
}

/**
 * Reads a JSON answer to a pipeline request with `Prefer: wait`: ok only for a `200` record that
 * `succeeded` and whose output `text` is exactly `expectedLines`.
 */
export function readPipelineAnswer(answer: HttpAnswer, expectedLines: readonly string[]): PipelineAnswer {
  if (answer.status === 202) return { outcome: { ok: false, error: 'not finished within the wait' } };
  if (answer.status !== 200) return { outcome: { ok: false, error: describeRefusal(answer) } };
  const record = JSON.parse(answer.body.toString('utf8')) as {
    status?: unknown;
    error?: { code?: unknown };
    outputs?: { text?: { data?: unknown } };
    timings?: { queueMs?: unknown; inferMs?: unknown; steps?: Record<string, StepTimings> };
  };
  if (record.status !== 'succeeded') {
    const code = typeof record.error?.code === 'string' ? ` (${record.error.code})` : '';
    return { outcome: { ok: false, error: `record ${String(record.status)}${code}` } };
  }
  const lines = record.outputs?.text?.data;
  if (
    !Array.isArray(lines) ||
    lines.length !== expectedLines.length ||
    lines.some((line, i) => line !== expectedLines[i])
  ) {
    return { outcome: { ok: false, error: 'text other than the image reads' } };
  }
  const timings = record.timings ?? {};
  return {
    outcome: {
      ok: true,
      ...(typeof timings.inferMs === 'number' ? { inferMs: timings.inferMs } : {}),
    },
    ...(typeof timings.queueMs === 'number' ? { queueMs: timings.queueMs } : {}),
    ...(timings.steps === undefined ? {} : { steps: timings.steps }),
  };
}

interface StepSums {
  kind: string;
  requests: number;
  ms: number;
  items: number;
  itemized: number;
  queueMs: number;
  inferMs: number;
  modelRequests: number;
  largestBatch: number;
}

/** Sums the succeeded records' step timings; `result()` gives each step's means, in the order the steps first ran. */
export class StepTally {
  private readonly steps = new Map<string, StepSums>();
  private queueSum = 0;
  private queueCount = 0;

  add(answer: PipelineAnswer): void {
    if (!answer.outcome.ok) return;
    if (answer.queueMs !== undefined) {
      this.queueSum += answer.queueMs;
      this.queueCount++;
    }
    for (const [name, step] of Object.entries(answer.steps ?? {})) {
      let sums = this.steps.get(name);
      if (sums === undefined) {
        sums = {
          kind: step.kind ?? 'unknown',
          requests: 0,
          ms: 0,
          items: 0,
          itemized: 0,
          queueMs: 0,
          inferMs: 0,
          modelRequests: 0,
          largestBatch: 0,
        };
        this.steps.set(name, sums);
      }
      sums.requests++;
      sums.ms += step.ms ?? 0;
      if (step.items !== undefined) {
        sums.items += step.items;
        sums.itemized++;
      }
      if (step.queueMs !== undefined && step.inferMs !== undefined) {
        sums.queueMs += step.queueMs;
        sums.inferMs += step.inferMs;
        sums.modelRequests++;
      }
      for (const size of step.batchSizes ?? []) sums.largestBatch = Math.max(sums.largestBatch, size);
    }
  }

  /** Mean of the records' `timings.queueMs` (undefined when none had one). */
  meanQueueMs(): number | undefined {
    return this.queueCount > 0 ? this.queueSum / this.queueCount : undefined;
  }

  result(): PipelineStepTiming[] {
    return [...this.steps].map(([step, s]) => ({
      step,
      kind: s.kind,
      requests: s.requests,
      meanMs: s.ms / s.requests,
      ...(s.itemized > 0 ? { meanItems: s.items / s.itemized } : {}),
      ...(s.modelRequests > 0
        ? { meanQueueMs: s.queueMs / s.modelRequests, meanInferMs: s.inferMs / s.modelRequests }
        : {}),
      ...(s.largestBatch > 0 ? { largestBatch: s.largestBatch } : {}),
    }));
  }
}

/** Each model's batches between two readings of the workers' `inferq_batch_size{model}`. */
export function batchesBetween(
  pipeline: BenchPipeline,
  before: ReadonlyMap<string, BatchCounters>,
  after: ReadonlyMap<string, BatchCounters>,
): PipelineModelBatches[] {
  return Object.keys(pipeline.models).map((model) => {
    const batches = (after.get(model)?.batches ?? 0) - (before.get(model)?.batches ?? 0);
    const items = (after.get(model)?.items ?? 0) - (before.get(model)?.items ?? 0);
    return {
      model,
      steps: pipeline.modelSteps.filter((s) => s.model === model).map((s) => s.step),
      batches,
      items,
      meanBatchSize: batches > 0 ? items / batches : undefined,
    };
  });
}

async function readBatchCounters(
  deployment: InferqDeployment,
  pipeline: BenchPipeline,
): Promise<Map<string, BatchCounters>> {
  const models = Object.keys(pipeline.models);
  const counters = await Promise.all(models.map((model) => workerBatchCounters(deployment, model)));
  return new Map(models.map((model, i) => [model, counters[i] as BatchCounters]));
}

/**
 * A closed loop of `concurrency` clients sending `body` to the pipeline with `Prefer: wait`, after
 * an unmeasured warm-up; for `durationMs`, or until `requests` have been sent. Each model's batches
 * come from the workers' counters around the measurement, each step's time from the records.
 */
export async function measurePipelineLoad(
  deployment: InferqDeployment,
  client: ApiClient,
  pipeline: BenchPipeline,
  request: { body: Buffer; expectedLines: readonly string[] },
  options: { concurrency: number; warmupMs: number; durationMs: number; requests?: number },
  progress: ProgressSink,
): Promise<PipelineLoadResult> {
  const path = `/v1/models/${encodeURIComponent(pipeline.name)}/infer`;
  const headers = {
    'content-type': 'application/json',
    accept: 'application/json',
    prefer: `wait=${PIPELINE_WAIT_SECONDS}`,
  };
  let tally = new StepTally();
  const send = async (): Promise<Outcome> => {
    const answer = readPipelineAnswer(await client.post(path, request.body, headers), request.expectedLines);
    tally.add(answer);
    return answer.outcome;
  };
  const { concurrency } = options;
  const warmup = await runClosedLoop({
    concurrency,
    durationMs: options.warmupMs,
    send,
    progress: (line) => progress(`warm-up: ${line}`),
  });
  tally = new StepTally();
  const before = await readBatchCounters(deployment, pipeline);
  const result = await runClosedLoop({
    concurrency,
    durationMs: options.durationMs,
    ...(options.requests === undefined ? {} : { requests: options.requests }),
    send,
    progress,
  });
  const after = await readBatchCounters(deployment, pipeline);
  return {
    ...result,
    concurrency,
    batches: batchesBetween(pipeline, before, after),
    steps: tally.result(),
    meanQueueMs: tally.meanQueueMs(),
    warmup: { sent: warmup.sent, ok: warmup.ok, errors: warmup.errors },
  };
}
