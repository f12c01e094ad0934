export {
  MAIN_THREAD_MAX_RUN_MS,
  ModelSession,
  type ModelSessionOptions,
  type SessionRunResult,
} from './session.ts';
export { batchGroupKey, batchRows, splitOutputs, stackInputs } from './stacking.ts';
