/** Everything one run measured: the shape of `bench/results/latest.json`. */
import type { DirectResult } from '../contenders/direct.ts';
import type { LatencySummary } from './latency.ts';
import type { LoadResult } from './load.ts';

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  platform: string;
  onnxruntimeNode: string;
  redisServer: string;
}

/** P1: a single client, one request at a time, `Prefer: wait`. */
export interface OverheadResult {
  model: string;
  requests: number;
  /** End-to-end minus the record's `timings.inferMs`. */
  overhead: LatencySummary;
  /**
   * The same over the first COLD_REQUESTS requests after the deployment started (part of the
   * unmeasured warm-up): what the first clients of a fresh start see.
   */
  cold?: LatencySummary;
  endToEnd: LatencySummary;
  inference: LatencySummary;
  errors: Record<string, number>;
}

/** P4: the same input sent over and over once its result is cached. */
export interface CacheResult {
  model: string;
  requests: number;
  latency: LatencySummary;
  /** Answers that were `200` records with `cached: true`. */
  cachedAnswers: number;
  /** Entries added to the model's queue streams during the hits (one per request that reached the queue). */
  queueEventsAdded: number;
  /** Batches the workers ran during the hits. */
  modelRuns: number;
  /** Change of the API's `inferq_requests_total{status="cached"}`. */
  cachedCounter: number;
}

/** P5: N identical requests in flight together. */
export interface CoalescingResult {
  model: string;
  requests: number;
  /** Batches the workers ran for them (`inferq_batch_size_count`). */
  modelRuns: number;
  /** Requests the workers finished by running the model (`inferq_requests_total{status="succeeded"}` of the worker). */
  inferences: number;
  /** Change of the API's `inferq_requests_total{status="coalesced"}`. */
  coalescedCounter: number;
  succeeded: number;
  /** Every answer carried the same output bytes. */
  identicalOutputs: boolean;
}

/** P6: requests pushed through the queue path, counted when they reach a terminal state. */
export interface ThroughputResult {
  model: string;
  method: string;
  connections: number;
  /** Requests per `infer:bulk` body (bulk only). */
  bulkSize?: number;
  submitted: number;
  accepted: number;
  /** Accepted requests whose completion message arrived on `{inferq}:done:<id>`. */
  terminal: number;
  succeeded: number;
  /** Accepted per second over the submission window. */
  acceptedPerSecond: number;
  /** From the first submit to the last completion. */
  elapsedMs: number;
  /** Terminal requests per second over `elapsedMs`: the figure P6 compares. */
  throughputPerSecond: number;
  errors: Record<string, number>;
}

export interface SaturationResult extends LoadResult {
  concurrency: number;
  /** Mean requests per batch the workers ran during the measurement. */
  meanBatchSize: number | undefined;
  /** P11: CPU time of the API process per successful request during the measurement (ms). */
  apiCpuMsPerRequest?: number | undefined;
}

export interface CurvePoint extends LoadResult {
  /** Offered load as a fraction of the contender's own measured saturation. */
  fraction: number;
  offeredPerSecond: number;
  meanBatchSize?: number | undefined;
  /** What the workers measured of the requests they ended during the point, where the contender says. */
  server?: ServerTimings | undefined;
}

/**
 * The workers' own account of the requests they ended during a measurement: mean time per phase
 * (`inferq_request_phase_seconds`, from acceptance) and how many met the model's objective
 * (`inferq_latency_objective_total`). Set against the client's latency, it says whether time went in
 * the queue and the model or in HTTP and the processes around them.
 */
export interface ServerTimings {
  requests: number;
  /** From acceptance to its batch's start (the record's `queueMs`): in Redis, then in the worker. */
  queueMs: number;
  /** From the worker taking it to its batch's start (`batchWaitMs`): part of `queueMs`. */
  batchWaitMs: number;
  inferenceMs: number;
  totalMs: number;
  /** Share of the succeeded requests that ended within the objective, where the model has one. */
  metObjective?: number | undefined;
}

/**
 * One step of a pipeline, averaged over the succeeded records of a measurement (their
 * `timings.steps`, docs/pipelines.md "Timings").
 */
export interface PipelineStepTiming {
  step: string;
  /** `model` or `processor`. */
  kind: string;
  /** Records that had the step. */
  requests: number;
  /** Mean wall time (a per-item step: from its first item's start to its last item's end). */
  meanMs: number;
  /** Per-item steps: mean items per request. */
  meanItems?: number;
  /** Model steps: means of the step's model requests' `queueMs` (acceptance to batch start) and `inferMs`. */
  meanQueueMs?: number;
  meanInferMs?: number;
  /** Model steps: the largest batch one of the step's model requests ran in (its `batchSizes`). */
  largestBatch?: number;
}

/** A model's batches during a measurement: the change of the workers' `inferq_batch_size{model}`. */
export interface PipelineModelBatches {
  model: string;
  /** The pipeline's steps that run it. */
  steps: string[];
  batches: number;
  items: number;
  /** items ÷ batches; undefined when no batch ran. */
  meanBatchSize: number | undefined;
}

/** A closed loop of requests to a pipeline; latencies end to end, `meanInferMs` the records' `timings.inferMs` (all steps). */
export interface PipelineLoadResult extends LoadResult {
  concurrency: number;
  /** Per model its steps run. */
  batches: PipelineModelBatches[];
  /** Per step, in the order the steps ran. */
  steps: PipelineStepTiming[];
  /** Mean of the records' `timings.queueMs`: acceptance to a worker taking the pipeline request. */
  meanQueueMs: number | undefined;
  /** The unmeasured warm-up's answers, checked as the measured ones are. */
  warmup: { sent: number; ok: number; errors: Record<string, number> };
}

/** A pipeline fed one image over and over, each request with `"cache": false`. */
export interface PipelineResult {
  pipeline: string;
  /** The image sent (relative to the repository root) and its size. */
  image: string;
  imageBytes: number;
  /** What every answer must read, line by line; any other answer counts as a failure. */
  expectedLines: string[];
  /** One client, one image at a time. */
  lowLoad?: PipelineLoadResult;
  /** `concurrency` clients, closed loop. */
  saturation?: PipelineLoadResult;
}

export interface WorkersPoint {
  workers: number;
  saturation: SaturationResult;
}

export interface BenchResults {
  version: 1;
  profile: 'quick' | 'full';
  scenarios: string[];
  seed: number;
  startedAt: string;
  wallSeconds: number;
  machine: MachineInfo;
  models: Record<string, { maxBatchSize: number; maxBatchDelayMs: number; latencyObjectiveMs?: number }>;
  direct?: DirectResult;
  naive?: {
    workerConcurrency: number;
    /** The design's reference: a bare BullMQ add → waitUntilFinished loop, one job at a time. */
    referenceLoop?: LatencySummary;
    saturation?: SaturationResult;
    curve?: CurvePoint[];
  };
  /** inferq on its default queue backend (streams). */
  inferq?: InferqResults;
  /** The all-in-one scenarios again on QUEUE_BACKEND=bullmq, in the same run. */
  inferqBullmq?: InferqResults;
  /** Scenarios that failed, with the reason. */
  failures: { scenario: string; message: string }[];
}

/** What the bench measured of inferq on one queue backend. */
export interface InferqResults {
  overhead?: OverheadResult;
  /** P1's measurement through node:http's client instead of the bench's lean one (fewer requests). */
  overheadNodeHttp?: OverheadResult;
  /**
   * The same measurement as P4 on the no-op model, run with P1: an answer from the cache is HTTP
   * and one script with no queue in the path, the floor under P1 on the same machine.
   */
  noopCache?: CacheResult;
  cache?: CacheResult;
  coalescing?: CoalescingResult;
  single?: ThroughputResult;
  bulk?: ThroughputResult;
  saturation?: SaturationResult;
  curve?: CurvePoint[];
  workers?: WorkersPoint[];
  /** The `ocr` pipeline, on an all-in-one of its own (streams queue only). */
  ocr?: PipelineResult;
}
