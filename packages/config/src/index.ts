export {
  type Config,
  ConfigError,
  type ConfigIssue,
  describeConfig,
  LOG_LEVELS,
  type LoadConfigOptions,
  type LogLevel,
  loadConfig,
  loadConfigOrExit,
} from './config.ts';
