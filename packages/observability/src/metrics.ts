import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Phases of a request's life, each timed into `inferq_request_phase_seconds`. */
export type RequestPhase = 'queue' | 'batch_wait' | 'inference' | 'total';

/** Queue depth per model, read when Prometheus scrapes (so the gauge is never stale). */
export type QueueDepthSource = () => Promise<Iterable<readonly [model: string, depth: number]>>;

/** Model version states, as the fleet view and workers report them (docs/models.md). */
export const MODEL_STATES = ['loading', 'ready', 'unavailable', 'retired'] as const;
export type ModelState = (typeof MODEL_STATES)[number];

/** Each model version's cost model on this worker (its BatchCostProfile), read when Prometheus scrapes. */
export type BatchCostSource = () => Iterable<{
  model: string;
  version: number;
  batchCosts?: {
    batchSizes: readonly { batchSize: number; ms: number }[];
    kneeBatchSize: number;
    bestBatchSize: number;
  };
}>;

/** Each model version's current state, read when Prometheus scrapes. */
export type ModelStateSource = () => Iterable<{ model: string; version: number; state: ModelState }>;

/**
 * API: per model version, the requests that wait for it while no live worker holds it (0 for a
 * version a worker holds), read when Prometheus scrapes: what wakes a worker group scaled to zero.
 */
export type BacklogWithoutCapacitySource = () => Promise<
  Iterable<{ model: string; version: number; backlog: number }>
>;

export interface Metrics {
  /** This process's own registry: scrape it with `registry.metrics()`, content type `registry.contentType`. */
  readonly registry: Registry;
  /** API: submissions by outcome (queued, coalesced, cached, rejected). Worker: requests finished by status. */
  readonly requests: Counter<'model' | 'status'>;
  readonly phaseSeconds: Histogram<'model' | 'phase'>;
  readonly batchSize: Histogram<'model'>;
  /** Worker: requests that met or missed their model's latency objective (latencyObjectiveMs). */
  readonly latencyObjective: Counter<'model' | 'outcome'>;
  /** Worker: each step of each pipeline request, by its wall time (docs/pipelines.md). */
  readonly pipelineStepSeconds: Histogram<'pipeline' | 'step' | 'kind'>;
  readonly queueDepth: Gauge<'model'>;
  readonly cacheHits: Counter<'model'>;
  readonly cacheMisses: Counter<'model'>;
  readonly coalesced: Counter<'model'>;
  readonly httpRequestDuration: Histogram<'method' | 'route' | 'status'>;
  /**
   * Where `inferq_queue_depth` reads from at scrape time. A failing source empties the gauge for that
   * scrape (better no series than a stale one) and is reported to `onError`; the scrape still succeeds.
   */
  setQueueDepthSource(source: QueueDepthSource, onError?: (error: unknown) => void): void;
  /** Where `inferq_model_state` reads from at scrape time. */
  setModelStateSource(source: ModelStateSource): void;
  /**
   * Where `inferq_backlog_without_capacity` reads from at scrape time; a failing source empties the
   * gauge for that scrape, as for the queue depth.
   */
  setBacklogWithoutCapacitySource(
    source: BacklogWithoutCapacitySource,
    onError?: (error: unknown) => void,
  ): void;
  /** Where `inferq_batch_cost_ms` and `inferq_batch_size_target` read from at scrape time (workers). */
  setBatchCostSource(source: BatchCostSource): void;
}

/** 0.5 ms to 10 s: an in-process cache hit sits at the bottom, a slow model run at the top. */
export const PHASE_BUCKETS_SECONDS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;
export const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128] as const;

/**
 * Every inferq metric, in a registry of its own (never prom-client's global one, so tests and
 * several components in one process do not collide), plus the Node.js default metrics. Each series
 * carries `service` so API and worker series stay apart when scraped by the same Prometheus job.
 */
export function createMetrics(service: 'api' | 'worker'): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  let queueDepthSource: QueueDepthSource | undefined;
  let onQueueDepthError: ((error: unknown) => void) | undefined;

  const queueDepth = new Gauge<'model'>({
    name: 'inferq_queue_depth',
    help: 'Jobs waiting, delayed or running per model, read from Redis at scrape time.',
    labelNames: ['model'],
    registers,
    async collect() {
      if (queueDepthSource === undefined) return;
      this.reset();
      try {
        for (const [model, depth] of await queueDepthSource()) this.set({ model }, depth);
      } catch (error: unknown) {
        this.reset();
        onQueueDepthError?.(error);
      }
    },
  });

  let modelStateSource: ModelStateSource | undefined;
  // One series per state, 1 for the current one (as kube-state-metrics does): an alert can match
  // `inferq_model_state{state="unavailable"} == 1` and a dashboard can count states.
  new Gauge<'model' | 'version' | 'state'>({
    name: 'inferq_model_state',
    help: 'Model version state: 1 for the current state (loading, ready, unavailable, retired), else 0.',
    labelNames: ['model', 'version', 'state'],
    registers,
    collect() {
      if (modelStateSource === undefined) return;
      this.reset();
      for (const { model, version, state } of modelStateSource()) {
        for (const candidate of MODEL_STATES) {
          this.set({ model, version: String(version), state: candidate }, candidate === state ? 1 : 0);
        }
      }
    },
  });

  let backlogSource: BacklogWithoutCapacitySource | undefined;
  let onBacklogError: ((error: unknown) => void) | undefined;
  // A series per served version, 0 while a worker holds it, so `> 0` alerts and scalers see a
  // series that exists before any backlog does.
  new Gauge<'model' | 'version'>({
    name: 'inferq_backlog_without_capacity',
    help: 'Requests waiting for a model version that no live worker holds (waiting, taken by a worker that died, or delayed for a retry; held by a pause not counted), read from Redis at scrape time; 0 for a version a live worker holds.',
    labelNames: ['model', 'version'],
    registers,
    async collect() {
      if (backlogSource === undefined) return;
      this.reset();
      try {
        for (const { model, version, backlog } of await backlogSource()) {
          this.set({ model, version: String(version) }, backlog);
        }
      } catch (error: unknown) {
        this.reset();
        onBacklogError?.(error);
      }
    },
  });

  let batchCostSource: BatchCostSource | undefined;
  new Gauge<'model' | 'version' | 'batch_size'>({
    name: 'inferq_batch_cost_ms',
    help: "A batch's estimated run time by its size (rows), from the worker's cost model: measured at warm-up, kept current from live runs.",
    labelNames: ['model', 'version', 'batch_size'],
    registers,
    collect() {
      if (batchCostSource === undefined) return;
      this.reset();
      for (const { model, version, batchCosts } of batchCostSource()) {
        for (const { batchSize, ms } of batchCosts?.batchSizes ?? []) {
          this.set({ model, version: String(version), batch_size: String(batchSize) }, ms);
        }
      }
    },
  });
  new Gauge<'model' | 'version' | 'size'>({
    name: 'inferq_batch_size_target',
    help: 'Batch sizes chosen from the cost model: knee (where a batch closes) and best (the most items per second, taken with a backlog).',
    labelNames: ['model', 'version', 'size'],
    registers,
    collect() {
      if (batchCostSource === undefined) return;
      this.reset();
      for (const { model, version, batchCosts } of batchCostSource()) {
        if (batchCosts === undefined) continue;
        this.set({ model, version: String(version), size: 'knee' }, batchCosts.kneeBatchSize);
        this.set({ model, version: String(version), size: 'best' }, batchCosts.bestBatchSize);
      }
    },
  });

  return {
    registry,
    requests: new Counter({
      name: 'inferq_requests_total',
      help: 'Inference requests by model and status: outcomes of submissions (api), finished requests (worker).',
      labelNames: ['model', 'status'],
      registers,
    }),
    phaseSeconds: new Histogram({
      name: 'inferq_request_phase_seconds',
      help: 'Time a request spends in each phase: queue, batch_wait, inference, and total.',
      labelNames: ['model', 'phase'],
      buckets: [...PHASE_BUCKETS_SECONDS],
      registers,
    }),
    pipelineStepSeconds: new Histogram({
      name: 'inferq_pipeline_step_seconds',
      help: "Wall time of each step of a pipeline request (a per-item step: its first item's start to its last item's end), by pipeline, step and kind (model or processor).",
      labelNames: ['pipeline', 'step', 'kind'],
      buckets: [...PHASE_BUCKETS_SECONDS],
      registers,
    }),
    latencyObjective: new Counter({
      name: 'inferq_latency_objective_total',
      help: "Requests that met or missed their model's latency objective (config.json latencyObjectiveMs): succeeded requests by their time from acceptance to their end.",
      labelNames: ['model', 'outcome'],
      registers,
    }),
    batchSize: new Histogram({
      name: 'inferq_batch_size',
      help: 'Requests per batch run by the model.',
      labelNames: ['model'],
      buckets: [...BATCH_SIZE_BUCKETS],
      registers,
    }),
    queueDepth,
    cacheHits: new Counter({
      name: 'inferq_cache_hits_total',
      help: 'Requests answered from the result cache.',
      labelNames: ['model'],
      registers,
    }),
    cacheMisses: new Counter({
      name: 'inferq_cache_misses_total',
      help: 'Cacheable requests not found in the result cache.',
      labelNames: ['model'],
      registers,
    }),
    coalesced: new Counter({
      name: 'inferq_coalesced_total',
      help: 'Requests attached to an identical request already queued or running.',
      labelNames: ['model'],
      registers,
    }),
    httpRequestDuration: new Histogram({
      name: 'inferq_http_request_duration_seconds',
      help: 'HTTP requests served, by method, route template and status code.',
      labelNames: ['method', 'route', 'status'],
      buckets: [...PHASE_BUCKETS_SECONDS],
      registers,
    }),
    setQueueDepthSource(source, onError) {
      queueDepthSource = source;
      onQueueDepthError = onError;
    },
    setModelStateSource(source) {
      modelStateSource = source;
    },
    setBacklogWithoutCapacitySource(source, onError) {
      backlogSource = source;
      onBacklogError = onError;
    },
    setBatchCostSource(source) {
      batchCostSource = source;
    },
  };
}
