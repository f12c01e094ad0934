export { createLogger, type Logger, type ServiceName } from './logger.ts';
export {
  BATCH_SIZE_BUCKETS,
  type BacklogWithoutCapacitySource,
  createMetrics,
  type Metrics,
  MODEL_STATES,
  type ModelState,
  type ModelStateSource,
  PHASE_BUCKETS_SECONDS,
  type QueueDepthSource,
  type RequestPhase,
} from './metrics.ts';
export { type FinishedRequestFields, logFinishedRequests, REQUEST_FINISHED } from './request-log.ts';
export {
  formatTraceparent,
  packTraceContext,
  parseTraceparent,
  parseTracestate,
  type TraceHeaders,
  type TraceParent,
  traceContextOfHeaders,
  traceIdOf,
  unpackTraceContext,
} from './trace-context.ts';
export {
  type AcceptedRequest,
  type AcceptSpan,
  type BatchSpan,
  type PipelineSpan,
  type RequestFailure,
  startTracing,
  TRACE_ATTRIBUTES,
  type TracedRequest,
  type Tracing,
} from './tracing.ts';
