export { CompletionWatcher } from './completion-watcher.ts';
export { createRedisConnection, type RedisRole } from './connection.ts';
export { DEADLINE_SWEEP_MS, type DeadlineSweeperOptions, startDeadlineSweeper } from './deadline-sweeper.ts';
export { type Keys, keysFor, queueName } from './keys.ts';
export {
  INFER_JOB_NAME,
  type InferJobData,
  RequestStore,
  type RequestStoreOptions,
} from './request-store.ts';
export type * from './types.ts';
