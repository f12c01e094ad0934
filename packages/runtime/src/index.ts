export {
  MAIN_THREAD_MAX_RUN_MS,
  ModelSession,
  type ModelSessionOptions,
  type SessionRunResult,
} from './session.ts';
export { batchGroupKey, batchRows, cropOutputs, splitOutputs, stackInputs } from './stacking.ts';
