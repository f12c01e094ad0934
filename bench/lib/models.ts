import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { temporaryDir } from './temporary.ts';

/** The demo models the bench drives, with the per-item input shape (the batch axis comes first). */
export const BENCH_MODELS = {
  'ppocr-cls': { inputName: 'x', itemShape: [3, 48, 192] },
  noop: { inputName: 'x', itemShape: [4] },
} as const;

export type BenchModelName = keyof typeof BENCH_MODELS;

export interface BenchModel {
  name: BenchModelName;
  inputName: string;
  itemShape: readonly number[];
  /** `models/demo/<name>/1/model.onnx`. */
  modelPath: string;
  maxBatchSize: number;
  maxBatchDelayMs: number;
  /** The model's p99 objective (`latencyObjectiveMs`), where its config sets one. */
  latencyObjectiveMs?: number;
}

/** Reads a demo model's batching settings from its `config.json`; fails loudly when `npm run build` has not run. */
export function loadBenchModel(repoRoot: string, name: BenchModelName): BenchModel {
  const folder = join(repoRoot, 'models', 'demo', name);
  const modelPath = join(folder, '1', 'model.onnx');
  if (!existsSync(modelPath)) throw new Error(`${modelPath} is missing: run \`npm run build\` first`);
  const config = JSON.parse(readFileSync(join(folder, 'config.json'), 'utf8')) as {
    maxBatchSize?: number;
    maxBatchDelayMs?: number;
    latencyObjectiveMs?: number;
  };
  if (typeof config.maxBatchSize !== 'number' || typeof config.maxBatchDelayMs !== 'number') {
    throw new Error(`${folder}/config.json must set maxBatchSize and maxBatchDelayMs for the bench`);
  }
  return {
    name,
    ...BENCH_MODELS[name],
    modelPath,
    maxBatchSize: config.maxBatchSize,
    maxBatchDelayMs: config.maxBatchDelayMs,
    ...(typeof config.latencyObjectiveMs === 'number'
      ? { latencyObjectiveMs: config.latencyObjectiveMs }
      : {}),
  };
}

/** Batch sizes 1, 2, 4, ... up to and including `max`. */
export function powersOfTwoUpTo(max: number): number[] {
  const sizes: number[] = [];
  for (let size = 1; size < max; size *= 2) sizes.push(size);
  if (max >= 1) sizes.push(max);
  return sizes;
}

/**
 * A model repository holding copies of only the models a deployment needs (same files, config.json
 * and warm-up sample as models/demo): a worker then loads and warms up nothing the scenario does not
 * use, and /readyz needs a live worker only for those models.
 */
export function makeRepository(
  models: readonly BenchModel[],
  repoRoot: string,
): { dir: string; remove(): void } {
  const { path: dir, remove } = temporaryDir('inferq-bench-models-');
  for (const model of models) {
    const source = join(repoRoot, 'models', 'demo', model.name);
    mkdirSync(join(dir, model.name, '1'), { recursive: true });
    copyFileSync(join(source, 'config.json'), join(dir, model.name, 'config.json'));
    copyFileSync(model.modelPath, join(dir, model.name, '1', 'model.onnx'));
    // The sample sets the shape the worker measures its cost model at (docs/design.md, "Batch sizes").
    const sample = join(source, '1', 'warmup.json');
    if (existsSync(sample)) copyFileSync(sample, join(dir, model.name, '1', 'warmup.json'));
  }
  return { dir, remove };
}
