export {
  type AdminConfig,
  type AdmissionLimits,
  type Config,
  ConfigError,
  type ConfigIssue,
  describeConfig,
  LOG_LEVELS,
  type LoadConfigOptions,
  type LogLevel,
  loadConfig,
  loadConfigOrExit,
  QUEUE_BACKENDS,
  type QueueBackend,
  type RedisClusterConfig,
  redisTarget,
  type WebhookConfig,
} from './config.ts';
export { exitOnListenFailure, listenFailure, type PortVariable } from './listen.ts';
