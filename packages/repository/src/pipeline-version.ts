/**
 * A version folder holding `pipeline.json` instead of `model.onnx` is a pipeline (docs/pipelines.md):
 * served at the same routes as a model, its signature the file's inputs and outputs, its config the
 * model folder's config.json (a pipeline never batches: its model steps do).
 */
import { readFile } from 'node:fs/promises';
import { type ModelInfo, type PipelineLookups, type PipelineSpec, parsePipelineFile } from '@inferq/pipeline';
import { BUILTIN_PROCESSORS } from '@inferq/processors/catalog';
import type { ModelSignature } from '@inferq/protocol';
import { type ModelConfig, ModelConfigError, resolveModelConfig } from './config.ts';

export const PIPELINE_FILE = 'pipeline.json';

/** What validation knows of the built-in processors, with each one's options checked. */
const processors: PipelineLookups['processors'] = (name) => BUILTIN_PROCESSORS.get(name);

export interface ReadPipeline {
  spec: PipelineSpec;
  config: ModelConfig;
}

/** Reads and checks one pipeline.json (its processors and their options; models come later). */
export async function readPipelineVersion(
  file: string,
  rawConfig: unknown,
  configFile: string,
): Promise<ReadPipeline> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new Error(`${file}: not valid JSON: ${(error as Error).message}`);
  }
  const spec = parsePipelineFile(raw, file, { processors });
  checkProcessorOptions(spec);
  const configObject = (rawConfig ?? {}) as Record<string, unknown>;
  const config = resolveModelConfig({ maxBatchSize: 0, ...configObject }, configFile, signatureOf(spec));
  if (config.maxBatchSize > 0) {
    throw new ModelConfigError(
      configFile,
      'maxBatchSize',
      `a pipeline runs each request on its own (its model steps are batched by their models); use 0`,
    );
  }
  return { spec, config };
}

/** A pipeline's signature: its inputs, and its outputs without where they come from. */
export function signatureOf(spec: PipelineSpec): ModelSignature {
  return { inputs: spec.inputs, outputs: spec.outputs.map(({ from: _from, ...output }) => output) };
}

/** The repository's models as a pipeline's model steps see them: a version's signature. */
export function checkPipelineModels(
  file: string,
  raw: unknown,
  models: (name: string, version?: number) => ModelInfo | undefined,
): PipelineSpec {
  return parsePipelineFile(raw, file, { processors, models });
}

function checkProcessorOptions(spec: PipelineSpec): void {
  for (const step of spec.steps) {
    if (step.kind !== 'processor') continue;
    const declaration = BUILTIN_PROCESSORS.get(step.processor);
    if (declaration === undefined) continue;
    const parsed = declaration.options.safeParse(step.options);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue === undefined || issue.path.length === 0 ? '' : `.${issue.path.join('.')}`;
      throw new Error(
        `${spec.file}: steps[${step.index}] '${step.name}': options${where}: ${issue?.message ?? 'invalid'}`,
      );
    }
  }
}
