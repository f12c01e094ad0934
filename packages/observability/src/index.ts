export { createLogger, type Logger, type ServiceName } from './logger.ts';
export {
  BATCH_SIZE_BUCKETS,
  createMetrics,
  type Metrics,
  MODEL_STATES,
  type ModelState,
  type ModelStateSource,
  PHASE_BUCKETS_SECONDS,
  type QueueDepthSource,
  type RequestPhase,
} from './metrics.ts';
