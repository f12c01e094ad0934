export {
  type CropRule,
  croppedSize,
  DEFAULT_MAX_BATCH_SIZE,
  DEFAULT_VERSION_POLICY,
  EXECUTION_PROVIDERS,
  type ExecutionProviderName,
  inferMaxBatchSize,
  type ModelConfig,
  ModelConfigError,
  type ModelConfigFile,
  ModelConfigFileSchema,
  type PadSpec,
  readVersionPolicy,
  resolveModelConfig,
  SESSION_PLACEMENTS,
  type SessionPlacement,
  servedVersions,
  type VersionPolicy,
} from './config.ts';
export {
  CONFIG_FILE,
  loadModelRepository,
  MODEL_FILE,
  type ModelEntry,
  type ModelInfo,
  type ModelRepository,
  type ModelVersion,
  type RepositoryVersion,
  WARMUP_FILES,
  type WarmupSample,
} from './repository.ts';
export { DTYPE_OF_ONNX_ELEMENT, readModelSignature, SignatureError } from './signature.ts';
export { RepositoryWatch, type RepositoryWatchOptions, type WatchLogger } from './watch.ts';
