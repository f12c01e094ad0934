export { allocateData, concatAxis0, emptyGathered } from './concat.ts';
export { PipelineStepError, PipelineTensorError } from './errors.ts';
export {
  type ModelStepResult,
  type PipelineResult,
  type RunPipelineOptions,
  runPipeline,
  type StepRuntime,
  type StepTiming,
} from './executor.ts';
export { type PipelineFile, PipelineFileSchema } from './schema.ts';
export {
  describeStep,
  formatReference,
  type ModelInfo,
  type ModelStepSpec,
  modelsOf,
  PipelineFileError,
  type PipelineLookups,
  type PipelineOutputSpec,
  type PipelineSpec,
  type ProcessorInfo,
  type ProcessorStepSpec,
  type Reference,
  type StepSpec,
} from './spec.ts';
export { parsePipelineFile } from './validate.ts';
