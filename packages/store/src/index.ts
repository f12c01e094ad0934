export { BULLMQ_LOCK_MS, BULLMQ_STALLED_CHECK_MS, BullmqIntake } from './bullmq/bullmq-intake.ts';
export { BullmqQueue, type BullmqQueueOptions } from './bullmq/bullmq-queue.ts';
export { INFER_JOB_NAME, type InferJobData } from './bullmq/job-data.ts';
export { OUTBOX_GRACE_MS, Outbox } from './bullmq/outbox.ts';
export {
  type CompletionHead,
  CompletionWatcher,
  type CompletionWatcherOptions,
  type ExpectedListener,
} from './completion-watcher.ts';
export {
  closeConnection,
  createRedisConnection,
  isCluster,
  type RedisClusterTarget,
  type RedisConnection,
  type RedisRole,
  type RedisTarget,
} from './connection.ts';
export { DEADLINE_SWEEP_MS, type DeadlineSweeperOptions, startDeadlineSweeper } from './deadline-sweeper.ts';
export {
  FleetRegistry,
  type FleetRegistryOptions,
  type ServedVersion,
  VERSION_STATES,
  type VersionState,
  type WorkerReport,
} from './fleet.ts';
export { CONSUMER_GROUP, type Keys, keysFor, parseQueueName, type QueueKeys, queueName } from './keys.ts';
export { LiveStatsRegistry, type LiveStatsRegistryOptions } from './live-stats/registry.ts';
export {
  type CacheSlot,
  firstSlotOfWindow,
  LATENCY_BUCKETS_MS,
  type LiveStatsReport,
  LiveStatsWindow,
  STATS_SLOT_MS,
  STATS_WINDOW_SLOTS,
  slotOf,
  type VersionSlot,
} from './live-stats/window.ts';
export { LiveStatsWriter, type LiveStatsWriterOptions } from './live-stats/writer.ts';
export { type CreateQueueOptions, createQueue } from './queue/create-queue.ts';
export {
  type DirectRequest,
  deliveryKey,
  type InferenceQueue,
  type IntakeHandler,
  type IntakeOptions,
  type QueueBackendName,
  type QueueIntake,
  type QueueLogger,
} from './queue/queue.ts';
export { QueueConsumer, type QueueConsumerOptions } from './queue-consumer.ts';
export { publishReload, subscribeReload } from './reload.ts';
export { MAX_STALLS, RequestStore, type RequestStoreOptions } from './request-store.ts';
export { StreamQueueAdmin } from './streams/stream-admin.ts';
export { DEFAULT_LEASE_TIMINGS, type LeaseTimings, StreamsIntake } from './streams/streams-intake.ts';
export { StreamsQueue, type StreamsQueueOptions } from './streams/streams-queue.ts';
export { INLINE_PAYLOAD_BYTES, streamFor } from './submit-request.ts';
export type * from './types.ts';
