/** How long and how much each scenario measures: `--quick` for a check in under two minutes, else the full run. */
export interface Profile {
  name: 'quick' | 'full';
  /**
   * Unmeasured load before each measurement (JIT, connection pools, onnxruntime arenas). Measured
   * here: inferq's ppocr-cls throughput keeps rising for about 5 s after a cold start (about 390
   * requests/s in the first 4 s, about 630 after), as each new batch size meets onnxruntime for the
   * first time; a shorter warm-up measures the start, not the steady state.
   */
  warmupMs: number;
  /** Per batch size of the direct contender. */
  directMs: number;
  /** Closed-loop saturation measurements. */
  saturationMs: number;
  /** Each point of the latency-versus-load curve. */
  curvePointMs: number;
  /** Offered load of each curve point, as a fraction of the contender's measured saturation. */
  curveFractions: number[];
  /**
   * Unmeasured requests before P1's. Measured here: one client's noop requests take about 2.7 ms
   * p50 over the first 500 after a start, 1.7 ms over the third 500 and 1.1 ms from the 3,000th on,
   * as V8 optimises the hot paths of the API, the worker and the client; P1 is about the steady state.
   */
  overheadWarmupRequests: number;
  overheadRequests: number;
  cacheRequests: number;
  coalescingRequests: number;
  /** How long P6 keeps submitting (then it waits for every accepted request to finish). */
  throughputWindowMs: number;
  singleConnections: number;
  bulkConnections: number;
  /** Requests per `infer:bulk` body: the API's default MAX_BULK_REQUESTS, which the bench leaves unset. */
  bulkSize: number;
  workerCounts: number[];
  /** The `ocr` pipeline: unmeasured load before each of its two measurements. */
  pipelineWarmupMs: number;
  /** Its low-load measurement: this many images one at a time, or fewer if `pipelineLowLoadMaxMs` is over first. */
  pipelineLowLoadRequests: number;
  pipelineLowLoadMaxMs: number;
  /** Its closed-loop saturation measurement. */
  pipelineSaturationMs: number;
  /** Longest wait for requests still outstanding at the end of a measurement. */
  drainTimeoutMs: number;
}

/** 95%: the open-loop target (sustained at ≥ 95% of the closed loop's saturation) is read there. */
const FRACTIONS_FULL = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0];

export const PROFILES: Record<Profile['name'], Profile> = {
  quick: {
    name: 'quick',
    warmupMs: 2_500,
    directMs: 800,
    saturationMs: 2_500,
    curvePointMs: 2_000,
    curveFractions: [0.1, 0.4, 0.7, 0.9, 1.0],
    overheadWarmupRequests: 2_000,
    overheadRequests: 500,
    cacheRequests: 1_000,
    coalescingRequests: 32,
    throughputWindowMs: 2_000,
    singleConnections: 64,
    bulkConnections: 8,
    bulkSize: 64,
    workerCounts: [1, 2, 4],
    pipelineWarmupMs: 1_500,
    pipelineLowLoadRequests: 20,
    pipelineLowLoadMaxMs: 6_000,
    pipelineSaturationMs: 4_000,
    drainTimeoutMs: 30_000,
  },
  full: {
    name: 'full',
    warmupMs: 8_000,
    directMs: 3_000,
    saturationMs: 10_000,
    curvePointMs: 6_000,
    curveFractions: FRACTIONS_FULL,
    overheadWarmupRequests: 4_000,
    overheadRequests: 3_000,
    cacheRequests: 1_000,
    coalescingRequests: 32,
    throughputWindowMs: 8_000,
    singleConnections: 64,
    bulkConnections: 8,
    bulkSize: 64,
    workerCounts: [1, 2, 4],
    pipelineWarmupMs: 3_000,
    pipelineLowLoadRequests: 60,
    pipelineLowLoadMaxMs: 20_000,
    pipelineSaturationMs: 12_000,
    drainTimeoutMs: 60_000,
  },
};
