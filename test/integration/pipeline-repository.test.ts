/**
 * Pipeline versions in the model repository (docs/pipelines.md): a folder with pipeline.json is read
 * as a pipeline, checked against the built-in processors and, where the whole repository is read,
 * against its models' signatures; every mistake makes the version unavailable with a reason naming
 * the file and the step.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelRepository } from '@inferq/repository';
import { afterAll, describe, expect, it } from 'vitest';
import { writeAffineModel } from '../helpers/onnx-models.ts';

const dirs: string[] = [];

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A repository holding `affine` (x float32 [-1, 4] → y) and the given pipeline files and configs. */
function repositoryWith(pipelines: Record<string, unknown>, configs: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'inferq-pipelines-'));
  dirs.push(dir);
  writeAffineModel(join(dir, 'affine', '1', 'model.onnx'), { scale: 2, bias: 1 });
  for (const [name, pipeline] of Object.entries(pipelines)) {
    mkdirSync(join(dir, name, '1'), { recursive: true });
    writeFileSync(join(dir, name, '1', 'pipeline.json'), JSON.stringify(pipeline));
  }
  for (const [name, config] of Object.entries(configs)) {
    writeFileSync(join(dir, name, 'config.json'), JSON.stringify(config));
  }
  return dir;
}

/** affine's output through softmax: a model step, then a processor step. */
function scores(edit: (steps: Record<string, unknown>[]) => void = () => undefined): unknown {
  const steps: Record<string, unknown>[] = [
    { name: 'score', model: 'affine', inputs: { x: 'x' } },
    { name: 'normalise', processor: 'softmax', inputs: { scores: 'score.y' } },
  ];
  edit(steps);
  return {
    inputs: [{ name: 'x', dtype: 'float32', shape: [-1, 4] }],
    outputs: [{ name: 'p', dtype: 'float32', shape: [-1, 4], from: 'normalise.probabilities' }],
    steps,
  };
}

describe('pipelines in the model repository', () => {
  it('reads a pipeline version: its signature from the file, never batched, its steps checked against its model', async () => {
    const dir = repositoryWith({ scores: scores() });
    const repository = await loadModelRepository(dir);
    expect(repository.problems).toEqual([]);
    const version = repository.get('scores')!;
    expect(version.path).toBe(join(dir, 'scores', '1', 'pipeline.json'));
    expect(version.signature).toEqual({
      inputs: [{ name: 'x', dtype: 'float32', shape: [-1, 4] }],
      outputs: [{ name: 'p', dtype: 'float32', shape: [-1, 4] }],
    });
    expect(version.config.maxBatchSize).toBe(0);
    expect(version.pipeline!.steps.map((step) => [step.name, step.kind])).toEqual([
      ['score', 'model'],
      ['normalise', 'processor'],
    ]);
    expect(repository.get('affine')!.pipeline).toBeUndefined();
  });

  it('makes unavailable, with the reason, a pipeline whose files or steps cannot be served', async () => {
    const file = (name: string): string => join(dir, name, '1', 'pipeline.json');
    const dir = repositoryWith(
      {
        'unknown-processor': scores((steps) => {
          steps[1]!.processor = 'no.such';
        }),
        'bad-options': scores((steps) => {
          steps[1]!.options = { temperature: 2 };
        }),
        'unknown-model': scores((steps) => {
          steps[0]!.model = 'gone';
        }),
        'wrong-input': scores((steps) => {
          steps[0]!.inputs = { input: 'x' };
        }),
        batched: scores(),
      },
      { batched: { maxBatchSize: 4 } },
    );
    writeAffineModel(join(dir, 'unknown-processor', '1', 'model.onnx'), { scale: 1, bias: 0 });
    const repository = await loadModelRepository(dir);
    const problem = (name: string): string | undefined => repository.version(name, 1)?.problem;
    expect(problem('unknown-processor')).toBe(
      `${join(dir, 'unknown-processor', '1')}: holds both model.onnx and pipeline.json; keep one`,
    );
    expect(problem('bad-options')).toMatch(`${file('bad-options')}: steps[1] 'normalise': options: `);
    expect(problem('bad-options')).toMatch('temperature');
    expect(problem('unknown-model')).toMatch(`${file('unknown-model')}: steps[0] 'score'`);
    expect(problem('unknown-model')).toMatch("'gone'");
    expect(problem('wrong-input')).toMatch(`${file('wrong-input')}: steps[0] 'score'`);
    expect(problem('batched')).toBe(
      `${join(dir, 'batched', 'config.json')}: maxBatchSize: a pipeline runs each request on its own (its model steps are batched by their models); use 0`,
    );
    for (const name of ['unknown-processor', 'bad-options', 'unknown-model', 'wrong-input', 'batched']) {
      expect(repository.get(name)).toBeUndefined();
    }
  });

  it('leaves a pipeline servable while its model is there but unusable (the API reports it unavailable meanwhile)', async () => {
    const dir = repositoryWith({ scores: scores() });
    writeFileSync(join(dir, 'affine', '1', 'model.onnx'), 'not a model');
    const repository = await loadModelRepository(dir);
    expect(repository.version('affine', 1)?.problem).toMatch('not an ONNX model');
    expect(repository.get('scores')?.pipeline).toBeDefined();
  });

  it('checks model steps only where the whole repository is read', async () => {
    const dir = repositoryWith({
      'unknown-model': scores((steps) => {
        steps[0]!.model = 'gone';
      }),
    });
    const partial = await loadModelRepository(dir, ['unknown-model']);
    expect(partial.get('unknown-model')?.pipeline).toBeDefined();
  });
});
