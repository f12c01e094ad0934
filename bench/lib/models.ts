import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { temporaryDir } from './temporary.ts';

/** The demo models the bench drives, with the per-item input shape (the batch axis comes first). */
export const BENCH_MODELS = {
  'ppocr-cls': { inputName: 'x', itemShape: [3, 48, 192] },
  noop: { inputName: 'x', itemShape: [4] },
} as const;

export type BenchModelName = keyof typeof BENCH_MODELS;

/** A model's batching settings, from its `config.json`. */
export interface BatchSettings {
  maxBatchSize: number;
  maxBatchDelayMs: number;
  /** The model's p99 objective (`latencyObjectiveMs`), where its config sets one. */
  latencyObjectiveMs?: number;
}

export interface BenchModel extends BatchSettings {
  name: BenchModelName;
  inputName: string;
  itemShape: readonly number[];
  /** `models/demo/<name>/1/model.onnx`. */
  modelPath: string;
}

/** The demo pipelines the bench drives (docs/pipelines.md); their inputs are files, not generated. */
export const BENCH_PIPELINES = ['ocr'] as const;

export type BenchPipelineName = (typeof BENCH_PIPELINES)[number];

/** A demo pipeline and the demo models its model steps run. */
export interface BenchPipeline {
  name: BenchPipelineName;
  /** `models/demo/<name>`: copied whole (its `1/pipeline.json` and the files its processors read). */
  folder: string;
  /** Its model steps, in the order declared, with the model each one runs. */
  modelSteps: readonly { step: string; model: string }[];
  /** The batching settings of each model those steps run. */
  models: Readonly<Record<string, BatchSettings>>;
}

function demoFolder(repoRoot: string, name: string): string {
  return join(repoRoot, 'models', 'demo', name);
}

/** A demo model's `model.onnx`; fails loudly when `npm run build` has not run. */
function demoModelPath(repoRoot: string, name: string): string {
  const modelPath = join(demoFolder(repoRoot, name), '1', 'model.onnx');
  if (!existsSync(modelPath)) throw new Error(`${modelPath} is missing: run \`npm run build\` first`);
  return modelPath;
}

/** A demo model's batching settings, from its `config.json`. */
function readBatchSettings(repoRoot: string, name: string): BatchSettings {
  const folder = demoFolder(repoRoot, name);
  const config = JSON.parse(readFileSync(join(folder, 'config.json'), 'utf8')) as {
    maxBatchSize?: number;
    maxBatchDelayMs?: number;
    latencyObjectiveMs?: number;
  };
  if (typeof config.maxBatchSize !== 'number' || typeof config.maxBatchDelayMs !== 'number') {
    throw new Error(`${folder}/config.json must set maxBatchSize and maxBatchDelayMs for the bench`);
  }
  return {
    maxBatchSize: config.maxBatchSize,
    maxBatchDelayMs: config.maxBatchDelayMs,
    ...(typeof config.latencyObjectiveMs === 'number'
      ? { latencyObjectiveMs: config.latencyObjectiveMs }
      : {}),
  };
}

/** Reads a demo model's batching settings from its `config.json`; fails loudly when `npm run build` has not run. */
export function loadBenchModel(repoRoot: string, name: BenchModelName): BenchModel {
  const modelPath = demoModelPath(repoRoot, name);
  return { name, ...BENCH_MODELS[name], modelPath, ...readBatchSettings(repoRoot, name) };
}

/**
 * Reads a demo pipeline's `pipeline.json` for the models its steps run, and checks that each of
 * them is there (`npm run build` materialises them).
 */
export function loadBenchPipeline(repoRoot: string, name: BenchPipelineName): BenchPipeline {
  const folder = demoFolder(repoRoot, name);
  const file = join(folder, '1', 'pipeline.json');
  if (!existsSync(file)) throw new Error(`${file} is missing`);
  const pipeline = JSON.parse(readFileSync(file, 'utf8')) as {
    steps?: { name?: unknown; model?: unknown }[];
  };
  const modelSteps = (pipeline.steps ?? []).flatMap((step) =>
    typeof step.model === 'string' && typeof step.name === 'string'
      ? [{ step: step.name, model: step.model }]
      : [],
  );
  const models: Record<string, BatchSettings> = {};
  for (const { model } of modelSteps) {
    demoModelPath(repoRoot, model);
    models[model] = readBatchSettings(repoRoot, model);
  }
  return { name, folder, modelSteps, models };
}

/** Batch sizes 1, 2, 4, ... up to and including `max`. */
export function powersOfTwoUpTo(max: number): number[] {
  const sizes: number[] = [];
  for (let size = 1; size < max; size *= 2) sizes.push(size);
  if (max >= 1) sizes.push(max);
  return sizes;
}

/**
 * A model repository holding copies of only the models (and pipelines) a deployment needs (same
 * files, config.json and warm-up sample as models/demo): a worker then loads and warms up nothing
 * the scenario does not use, and /readyz needs a live worker only for those models. A pipeline's
 * folder is copied whole, with the models its steps run.
 */
export function makeRepository(
  models: readonly BenchModel[],
  repoRoot: string,
  pipelines: readonly BenchPipeline[] = [],
): { dir: string; remove(): void } {
  const { path: dir, remove } = temporaryDir('inferq-bench-models-');
  const copied = new Set<string>();
  const copyModel = (name: string): void => {
    if (copied.has(name)) return;
    copied.add(name);
    const source = demoFolder(repoRoot, name);
    mkdirSync(join(dir, name, '1'), { recursive: true });
    copyFileSync(join(source, 'config.json'), join(dir, name, 'config.json'));
    copyFileSync(demoModelPath(repoRoot, name), join(dir, name, '1', 'model.onnx'));
    // The sample sets the shape the worker measures its cost model at (docs/design.md, "Batch sizes").
    const sample = join(source, '1', 'warmup.json');
    if (existsSync(sample)) copyFileSync(sample, join(dir, name, '1', 'warmup.json'));
  };
  for (const model of models) copyModel(model.name);
  for (const pipeline of pipelines) {
    cpSync(pipeline.folder, join(dir, pipeline.name), { recursive: true });
    for (const model of Object.keys(pipeline.models)) copyModel(model);
  }
  return { dir, remove };
}
