export {
  type CropRule,
  croppedSize,
  DEFAULT_MAX_BATCH_SIZE,
  EXECUTION_PROVIDERS,
  type ExecutionProviderName,
  inferMaxBatchSize,
  type ModelConfig,
  ModelConfigError,
  type ModelConfigFile,
  ModelConfigFileSchema,
  type PadSpec,
  resolveModelConfig,
  SESSION_PLACEMENTS,
  type SessionPlacement,
} from './config.ts';
export {
  CONFIG_FILE,
  loadModelRepository,
  MODEL_FILE,
  type ModelInfo,
  type ModelRepository,
  type ModelVersion,
} from './repository.ts';
export { readModelSignature, SignatureError } from './signature.ts';
