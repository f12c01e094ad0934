export { createLogger, type Logger, type ServiceName } from './logger.ts';
export {
  BATCH_SIZE_BUCKETS,
  createMetrics,
  type Metrics,
  PHASE_BUCKETS_SECONDS,
  type QueueDepthSource,
  type RequestPhase,
} from './metrics.ts';
