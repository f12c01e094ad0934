/**
 * Glossary
 * - tensor: `{ dtype, shape, data }`; `data` is a typed-array view (strings: an array) over the
 *   little-endian element bytes, never a copy when alignment allows.
 * - request: one submitted inference; identified by an unguessable id; its record lives in Redis.
 * - record: the request's state as clients see it (docs/api.md "Request record").
 * - cache key: SHA-256 over model, version, requested outputs and inputs in canonical order.
 * - leader / follower: a request whose cache key is already in flight does not run; it follows the
 *   leader that does, and receives the same outputs (`coalesced: true`).
 * - payload: the MessagePack bytes of a request's inputs (and requested outputs), stored once in
 *   Redis by the API (inside its queue entry when small, under a key of its own otherwise) and read
 *   by the worker.
 * - batch: requests of one model version run together, stacked along axis 0.
 */

export const DTYPES = [
  'float32',
  'float64',
  'float16',
  'int8',
  'int16',
  'int32',
  'int64',
  'uint8',
  'uint16',
  'uint32',
  'uint64',
  'bool',
  'string',
] as const;

export type DType = (typeof DTYPES)[number];

export type NumericDType = Exclude<DType, 'string'>;

/** Element data of a tensor. float16 is carried as raw Uint16 bits; bool as one Uint8 per element. */
export type TensorData =
  | Float32Array
  | Float64Array
  | Uint16Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint32Array
  | BigUint64Array
  | string[];

export interface Tensor {
  dtype: DType;
  shape: number[];
  data: TensorData;
}

export type TensorMap = Record<string, Tensor>;

export type WireFormat = 'msgpack' | 'json';

export interface CallbackSpec {
  channel?: string;
  url?: string;
}

/** A decoded and structurally valid `POST .../infer` body (not yet checked against a model). */
export interface InferRequestBody {
  inputs: TensorMap;
  outputs?: string[];
  priority?: number;
  timeoutMs?: number;
  cache?: boolean;
  callback?: CallbackSpec;
  metadata?: Record<string, unknown>;
}

/** One input or output of a model; -1 marks a dynamic dimension. */
export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: number[];
}

export interface ModelSignature {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

/** A model version's state in the fleet (docs/models.md): Triton's repository index, plus capacity. */
export interface ModelVersionStatus {
  version: number;
  state: 'loading' | 'ready' | 'unavailable' | 'retired';
  /** Why it is unavailable or retired: onnxruntime's or the config check's message, verbatim. */
  reason?: string;
  /** Live workers with it ready. */
  liveWorkers: number;
  /** Execution providers its live workers really run it on (a `cuda` config may have fallen back to `cpu`). */
  providers: string[];
  /** A request for it is accepted now (ready, loading, or waiting for capacity with WAIT_FOR_CAPACITY). */
  accepting: boolean;
  /** Opening the session and the warm-up run on a worker (ms). */
  loadMs?: number;
  warmupMs?: number;
  /** Its cost model on a live worker: what a batch of each size costs, and the sizes chosen from it. */
  batchCosts?: BatchCostProfile;
}

/**
 * A model version's cost model as a worker measured it (docs/design.md, "Batch sizes"): run time
 * against batch size (rows), measured at warm-up and kept current from live runs.
 */
export interface BatchCostProfile {
  /** The sizes measured, smallest first, each with its estimated run time (ms). */
  batchSizes: { batchSize: number; ms: number }[];
  /** What a batch costs besides its model run (scripts, stacking, splitting), learnt from live batches (ms). */
  overheadMs: number;
  /** The smallest batch whose items per second are within 90% of the best: where batches close. */
  kneeBatchSize: number;
  /** The batch size with the most items per second: what a backlog is taken in. */
  bestBatchSize: number;
}

/** `GET /v1/models/{model}` (and each entry of `GET /v1/models`): a model and its default version. */
export interface ModelDescription {
  name: string;
  /** Versions served (the version policy's), ascending. */
  versions: number[];
  /** Where a request without a version goes: the highest ready version, else the highest served. */
  defaultVersion: number;
  /** The version `inputs`, `outputs` and the rest describe (the default one). */
  version: number;
  /** Shapes use -1 for dynamic dimensions; empty when the default version cannot be read. */
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /**
   * Its config.json's batching: `preferredBatchSizes` (empty: sizes come from the cost model) and
   * the p99 objective `latencyObjectiveMs` (null: none).
   */
  batching: {
    maxBatchSize: number;
    maxBatchDelayMs: number;
    preferredBatchSizes: number[];
    latencyObjectiveMs: number | null;
  };
  /** The provider the default version really runs on; null while no live worker has it ready. */
  executionProvider: string | null;
  /** The providers its config.json asks for, in order of preference. */
  configuredProviders: string[];
  cache: { enabled: boolean; ttlSeconds: number };
  /** The default version is ready on a live worker. */
  ready: boolean;
  /** Every version folder of the model, retired ones included, with its state. */
  versionStates: ModelVersionStatus[];
}

export const REQUEST_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'expired'] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];
export const TERMINAL_STATUSES: ReadonlySet<RequestStatus> = new Set([
  'succeeded',
  'failed',
  'cancelled',
  'expired',
]);

export interface Timings {
  queueMs: number;
  batchWaitMs: number;
  inferMs: number;
  totalMs: number;
  /** A pipeline request's steps, by step name, in the order they ran (docs/pipelines.md). */
  steps?: Record<string, StepTiming>;
}

/** Where one step of a pipeline request spent its time (ms). */
export interface StepTiming {
  kind: 'model' | 'processor';
  /** Wall time of the step; for a per-item step, from its first item's start to its last item's end. */
  ms: number;
  /** Per-item steps: how many items ran. */
  items?: number;
  /** Model steps: means over the step's model requests of their records' phases. */
  queueMs?: number;
  batchWaitMs?: number;
  inferMs?: number;
  /** Model steps: the batch size each of its model requests ran in. */
  batchSizes?: number[];
}

export interface RequestError {
  code: string;
  message: string;
}

export interface RequestRecord {
  id: string;
  model: string;
  version: number;
  status: RequestStatus;
  cached: boolean;
  coalesced?: boolean;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  timings: Timings;
  batchSize?: number;
  outputs?: TensorMap;
  error?: RequestError;
  metadata?: Record<string, unknown>;
}

/** The pub/sub completion message (MessagePack on `<prefix>:done:<id>` and `callback.channel`). */
export interface CompletionMessage {
  id: string;
  status: RequestStatus;
  model: string;
  version: number;
  cached: boolean;
  timings: Timings;
  outputs?: TensorMap;
  error?: RequestError;
  /**
   * Beyond docs/api.md's minimum, so that a waiting API can answer from the message alone (readers
   * ignore keys they do not know): when the run started and ended (ISO 8601) and the batch size.
   */
  startedAt?: string;
  finishedAt?: string;
  batchSize?: number;
  /**
   * The request has outputs, but they were larger than `MESSAGE_OUTPUT_BYTES` and are left out
   * (`outputs` absent): read them from the record. Keeps every message small, whatever the results,
   * so a burst of large ones cannot overflow a subscriber's output buffer in Redis.
   */
  outputsOmitted?: boolean;
}

/**
 * Caps that keep one request from taking the process down (configured by the MAX_* variables of
 * packages/config; docs/security.md says why the defaults are what they are).
 */
export interface InputLimits {
  /** Elements of one tensor (the product of its shape). */
  maxElementsPerTensor: number;
  maxRank: number;
  /** Any one dimension of a shape. */
  maxDimension: number;
  /** UTF-8 bytes of one element of a string tensor. */
  maxStringBytes: number;
  /** Tensors in `inputs`. */
  maxInputs: number;
  /**
   * Elements a body spells out one by one (JSON or MessagePack arrays, string tensors), all its
   * tensors together. Binary data (MessagePack bin, JSON b64) costs no more memory than its bytes
   * and is bounded by the body size alone; a listed element costs 8 to 16 bytes once parsed.
   */
  maxListElements: number;
}

export const DEFAULT_INPUT_LIMITS: InputLimits = {
  maxElementsPerTensor: 16 * 1024 * 1024,
  maxRank: 8,
  maxDimension: 16 * 1024 * 1024,
  maxStringBytes: 64 * 1024,
  maxInputs: 64,
  maxListElements: 1024 * 1024,
};
