import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadBenchModel, loadBenchPipeline, makeRepository } from './models.ts';

let root: string | undefined;

afterEach(() => {
  if (root !== undefined) rmSync(root, { recursive: true, force: true });
  root = undefined;
});

/** A repository root whose models/demo holds `models` (config.json, model.onnx, a warm-up sample) and the ocr pipeline. */
function fakeRoot(models: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'inferq-bench-models-test-'));
  for (const [i, name] of models.entries()) {
    mkdirSync(join(dir, 'models', 'demo', name, '1'), { recursive: true });
    writeFileSync(
      join(dir, 'models', 'demo', name, 'config.json'),
      JSON.stringify({ maxBatchSize: 2 ** (i + 1), maxBatchDelayMs: i + 1 }),
    );
    writeFileSync(join(dir, 'models', 'demo', name, '1', 'model.onnx'), `onnx of ${name}`);
    writeFileSync(join(dir, 'models', 'demo', name, '1', 'warmup.json'), '{}');
  }
  const ocr = join(dir, 'models', 'demo', 'ocr', '1');
  mkdirSync(ocr, { recursive: true });
  writeFileSync(
    join(ocr, 'pipeline.json'),
    JSON.stringify({
      steps: [
        { name: 'decode', processor: 'image.decode' },
        { name: 'detect', model: 'ppocr-det' },
        { name: 'classify', model: 'ppocr-cls', forEach: 'crops' },
        { name: 'recognise', model: 'ppocr-rec', forEach: 'crops' },
      ],
    }),
  );
  writeFileSync(join(ocr, 'ppocr_keys_v1.txt'), 'a\nb\n');
  return dir;
}

describe('loadBenchPipeline and makeRepository', () => {
  it('reads the models a pipeline runs and copies the pipeline folder whole, with each model once', () => {
    root = fakeRoot(['ppocr-det', 'ppocr-cls', 'ppocr-rec', 'noop']);
    const pipeline = loadBenchPipeline(root, 'ocr');
    expect(pipeline.modelSteps).toEqual([
      { step: 'detect', model: 'ppocr-det' },
      { step: 'classify', model: 'ppocr-cls' },
      { step: 'recognise', model: 'ppocr-rec' },
    ]);
    expect(pipeline.models).toEqual({
      'ppocr-det': { maxBatchSize: 2, maxBatchDelayMs: 1 },
      'ppocr-cls': { maxBatchSize: 4, maxBatchDelayMs: 2 },
      'ppocr-rec': { maxBatchSize: 8, maxBatchDelayMs: 3 },
    });
    const repository = makeRepository([loadBenchModel(root, 'ppocr-cls')], root, [pipeline]);
    try {
      expect(readdirSync(repository.dir).sort()).toEqual(['ocr', 'ppocr-cls', 'ppocr-det', 'ppocr-rec']);
      expect(readdirSync(join(repository.dir, 'ocr', '1')).sort()).toEqual([
        'pipeline.json',
        'ppocr_keys_v1.txt',
      ]);
      expect(readFileSync(join(repository.dir, 'ppocr-det', '1', 'model.onnx'), 'utf8')).toBe(
        'onnx of ppocr-det',
      );
      expect(existsSync(join(repository.dir, 'ppocr-rec', '1', 'warmup.json'))).toBe(true);
      expect(existsSync(join(repository.dir, 'ppocr-rec', 'config.json'))).toBe(true);
    } finally {
      repository.remove();
    }
    expect(existsSync(repository.dir)).toBe(false);
  });

  it('says to build when a model the pipeline runs is missing', () => {
    root = fakeRoot(['ppocr-det', 'ppocr-cls']);
    expect(() => loadBenchPipeline(root as string, 'ocr')).toThrow(/ppocr-rec.*run `npm run build` first/);
  });
});
