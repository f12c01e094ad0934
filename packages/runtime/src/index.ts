export {
  MAIN_THREAD_MAX_RUN_MS,
  MAIN_THREAD_PROBE_MAX_BYTES,
  ModelSession,
  type ModelSessionOptions,
  type SessionRunResult,
} from './session.ts';
export { batchGroupKey, batchRows, cropOutputs, splitOutputs, stackInputs } from './stacking.ts';
