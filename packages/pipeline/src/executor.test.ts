import { describe, expect, it } from 'vitest';
import { PipelineTensorError } from './errors.ts';
import { runPipeline } from './executor.ts';
import type { PipelineLookups, StepSpec } from './spec.ts';
import {
  FakeRuntime,
  FILE,
  f32,
  IMAGE,
  LOOKUPS,
  LOOKUPS_WITH_MODELS,
  modelAnswer,
  ocrFile,
} from './test-support.ts';
import { parsePipelineFile } from './validate.ts';

const ocr = (lookups: PipelineLookups = LOOKUPS) => parsePipelineFile(ocrFile(), FILE, lookups);

describe('runPipeline: fan-out and fan-in', () => {
  it('runs each line through the per-item steps and gathers them in item order (3 items)', async () => {
    const runtime = new FakeRuntime(3);
    const result = await runPipeline(ocr(), IMAGE, runtime);
    expect(result.outputs).toEqual({
      text: { dtype: 'string', shape: [3], data: ['line 0', 'line 1', 'line 2'] },
      boxes: f32([3, 4], [0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3]),
      confidence: f32([3], [0, 0.1, 0.2]),
    });
    expect(runtime.calls).toEqual([
      'decode',
      'det-input',
      'detect',
      'boxes',
      'crops',
      ...['rec-input', 'rec-input', 'rec-input'],
      ...['recognise', 'recognise', 'recognise'],
      ...['ctc', 'ctc', 'ctc'],
      'lines',
    ]);
    expect(Object.keys(result.steps)).toEqual(ocr().steps.map((step) => step.name));
    expect(result.steps.recognise!.items).toBe(3);
    expect(result.steps.crops!.items).toBeUndefined();
  });

  it('gathers one item', async () => {
    const result = await runPipeline(ocr(), IMAGE, new FakeRuntime(1));
    expect(result.outputs).toEqual({
      text: { dtype: 'string', shape: [1], data: ['line 0'] },
      boxes: f32([1, 4], [0, 0, 1, 1]),
      confidence: f32([1], [0]),
    });
  });

  it('gathers no item into empty tensors shaped by the declared outputs', async () => {
    const runtime = new FakeRuntime(0);
    const result = await runPipeline(ocr(), IMAGE, runtime);
    expect(result.outputs).toEqual({
      text: { dtype: 'string', shape: [0], data: [] },
      boxes: f32([0, 4], []),
      confidence: f32([0], []),
    });
    expect(runtime.calls).toEqual(['decode', 'det-input', 'detect', 'boxes', 'crops', 'lines']);
    expect(result.steps['rec-input']).toEqual({ ms: 0, kind: 'processor', items: 0 });
    expect(result.steps.recognise).toEqual({ ms: 0, kind: 'model', items: 0 });
  });

  it("gathers no item of a model step from outputSpecOf, else from the model's outputs known at parse time", async () => {
    const file = ocrFile();
    file.outputs.push({
      name: 'probabilities',
      dtype: 'float32',
      shape: [-1, -1, 97],
      from: 'recognise.softmax_2.tmp_0',
    });
    const empty = f32([0, 0, 97], []);
    const known = parsePipelineFile(file, FILE, LOOKUPS_WITH_MODELS);
    expect((await runPipeline(known, IMAGE, new FakeRuntime(0))).outputs.probabilities).toEqual(empty);

    const unknown = parsePipelineFile(file, FILE, LOOKUPS);
    const outputSpecOf = (step: StepSpec, name: string) =>
      step.kind === 'model' && step.model === 'ppocr-rec' && name === 'softmax_2.tmp_0'
        ? { name, dtype: 'float32' as const, shape: [-1, -1, 97] }
        : undefined;
    expect(
      (await runPipeline(unknown, IMAGE, new FakeRuntime(0), { outputSpecOf })).outputs.probabilities,
    ).toEqual(empty);
    await expect(runPipeline(unknown, IMAGE, new FakeRuntime(0))).rejects.toThrow(
      new PipelineTensorError(
        'output',
        'probabilities',
        "pipeline output 'probabilities': cannot gather 'recognise.softmax_2.tmp_0' of no item: the dtype of output 'softmax_2.tmp_0' of step 'recognise' (model ppocr-rec) is not known",
      ),
    );
  });

  it('refuses to gather items that disagree, naming the gathering step', async () => {
    const runtime = new FakeRuntime(2, async (step, inputs) =>
      step.name === 'recognise' && (inputs.x!.data as Float32Array)[0] === 1
        ? { outputs: { 'softmax_2.tmp_0': f32([1, 1, 2], [1, 1]) } }
        : modelAnswer(step, inputs),
    );
    const file = ocrFile();
    file.steps.push({
      name: 'all',
      processor: 'ocr.ctc-decode',
      inputs: { probabilities: 'recognise.softmax_2.tmp_0' },
    });
    await expect(runPipeline(parsePipelineFile(file, FILE, LOOKUPS), IMAGE, runtime)).rejects.toThrow(
      "step 'all' (processor ocr.ctc-decode) failed: cannot gather 'recognise.softmax_2.tmp_0': item 1 has shape [1, 1, 2], but item 0 has [1, 1, 1]: all dimensions but the first must agree",
    );
  });
});

describe('runPipeline: concurrency', () => {
  it('requests every item of a per-item model step before any of them is answered', async () => {
    const pending: (() => void)[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const runtime = new FakeRuntime(3, (step, inputs) => {
      if (step.name !== 'recognise') return Promise.resolve(modelAnswer(step, inputs));
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      return new Promise((resolve) => {
        pending.push(() => {
          inFlight--;
          resolve(modelAnswer(step, inputs));
        });
        // Answers every request waiting once the ones made in this turn are all in.
        if (pending.length === 1) {
          setImmediate(() => {
            for (const answer of pending.splice(0)) answer();
          });
        }
      });
    });
    const result = await runPipeline(ocr(), IMAGE, runtime);
    expect(maxInFlight).toBe(3);
    expect(result.outputs.text!.data).toEqual(['line 0', 'line 1', 'line 2']);
  });
});
