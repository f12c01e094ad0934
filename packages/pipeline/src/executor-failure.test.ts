import type { TensorMap } from '@inferq/protocol';
import { describe, expect, it } from 'vitest';
import { PipelineStepError, PipelineTensorError } from './errors.ts';
import { type ModelStepResult, runPipeline } from './executor.ts';
import type { PipelineLookups, StepSpec } from './spec.ts';
import { FakeRuntime, FILE, f32, IMAGE, LOOKUPS, modelAnswer, ocrFile, settle } from './test-support.ts';
import { parsePipelineFile } from './validate.ts';

const ocr = (lookups: PipelineLookups = LOOKUPS) => parsePipelineFile(ocrFile(), FILE, lookups);

describe('runPipeline: failure and cancellation', () => {
  it('names the failed step and aborts the calls still in flight', async () => {
    const signals: AbortSignal[] = [];
    const failure = new Error('model ppocr-rec version 1 is unavailable');
    const runtime = new FakeRuntime(3, (step, inputs, signal) => {
      if (step.name !== 'recognise') return Promise.resolve(modelAnswer(step, inputs));
      signals.push(signal);
      if (signals.length === 2) return settle().then(() => Promise.reject(failure));
      return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
    });
    const error = await runPipeline(ocr(), IMAGE, runtime).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(PipelineStepError);
    expect((error as PipelineStepError).message).toBe(
      "step 'recognise' (model ppocr-rec) failed: model ppocr-rec version 1 is unavailable",
    );
    expect((error as PipelineStepError).step).toBe('recognise');
    expect((error as PipelineStepError).item).toBe(1);
    expect((error as PipelineStepError).cause).toBe(failure);
    expect(signals.map((signal) => [signal.aborted, signal.reason])).toEqual([
      [true, error],
      [true, error],
      [true, error],
    ]);
    expect(runtime.calls).not.toContain('ctc');
  });

  it('checks what processors and models return', async () => {
    const wrap = (steps: Partial<Record<string, unknown>>) =>
      new (class extends FakeRuntime {
        override async runProcessor(step: StepSpec, inputs: TensorMap, signal: AbortSignal) {
          const result = await super.runProcessor(step, inputs, signal);
          return (step.name in steps ? steps[step.name] : result) as TensorMap;
        }
      })(2, async (step, inputs) =>
        step.name in steps ? (steps[step.name] as ModelStepResult) : modelAnswer(step, inputs),
      );
    const run = (steps: Partial<Record<string, unknown>>) => runPipeline(ocr(), IMAGE, wrap(steps));
    await expect(run({ crops: { image: IMAGE.image } })).rejects.toThrow(
      "step 'crops' (processor image.crop-boxes) failed: processor image.crop-boxes fans out, so it must return a list of results, but it returned one",
    );
    await expect(run({ boxes: [{ boxes: f32([0, 4], []) }] })).rejects.toThrow(
      "step 'boxes' (processor ppocr.text-boxes) failed: processor ppocr.text-boxes does not fan out, so it must return one result, but it returned a list",
    );
    await expect(run({ ctc: { text: { dtype: 'string', shape: [1], data: ['x'] } } })).rejects.toThrow(
      "step 'ctc' (processor ocr.ctc-decode) failed: processor ocr.ctc-decode returned no output 'confidence'",
    );
    await expect(
      run({ 'det-input': { x: { dtype: 'float64', shape: [1], data: new Float64Array(1) } } }),
    ).rejects.toThrow(
      "step 'det-input' (processor ppocr.detector-input) failed: processor ppocr.detector-input returned 'x' as float64, but declares float32",
    );
    await expect(run({ detect: { outputs: { maps: f32([1], [0]) } } })).rejects.toThrow(
      "step 'detect' (model ppocr-det) failed: model ppocr-det returned no output 'sigmoid_0.tmp_0'",
    );
    await expect(run({ detect: undefined })).rejects.toThrow(
      "step 'detect' (model ppocr-det) failed: model ppocr-det returned undefined, not a map of tensors",
    );
  });

  it("rejects with the caller's reason when its signal aborts, and aborts the calls in flight", async () => {
    const caller = new AbortController();
    const reason = new Error('request cancelled');
    const signals: AbortSignal[] = [];
    // The model calls never answer, even when aborted: the run must not wait for them.
    const runtime = new FakeRuntime(3, (step, inputs, signal) => {
      if (step.name !== 'recognise') return Promise.resolve(modelAnswer(step, inputs));
      signals.push(signal);
      if (signals.length === 3) setImmediate(() => caller.abort(reason));
      return new Promise(() => {});
    });
    await expect(runPipeline(ocr(), IMAGE, runtime, { signal: caller.signal })).rejects.toBe(reason);
    expect(signals.map((signal) => [signal.aborted, signal.reason])).toEqual([
      [true, reason],
      [true, reason],
      [true, reason],
    ]);
  });

  it("does not wrap the caller's reason when a call rejects because of it", async () => {
    const caller = new AbortController();
    const runtime = new FakeRuntime(1, (step, inputs, signal) => {
      if (step.name !== 'detect') return Promise.resolve(modelAnswer(step, inputs));
      caller.abort('gone');
      return Promise.reject(new Error(`aborted: ${String(signal.reason)}`));
    });
    await expect(runPipeline(ocr(), IMAGE, runtime, { signal: caller.signal })).rejects.toBe('gone');
  });

  it('calls nothing when the signal is already aborted', async () => {
    const runtime = new FakeRuntime(1);
    const reason = new Error('too late');
    await expect(runPipeline(ocr(), IMAGE, runtime, { signal: AbortSignal.abort(reason) })).rejects.toBe(
      reason,
    );
    expect(runtime.calls).toEqual([]);
  });
});

describe('runPipeline: timings', () => {
  it('times each step with the injected clock, and averages the model records', async () => {
    let clock = 1000;
    const records: Omit<ModelStepResult, 'outputs'>[] = [
      { queueMs: 1, batchWaitMs: 4, inferMs: 10, batchSize: 3 },
      { queueMs: 2, inferMs: 10, batchSize: 3 },
      { queueMs: 6, batchWaitMs: 2, inferMs: 10, batchSize: 3 },
    ];
    const runtime = new FakeRuntime(3, async (step, inputs) => {
      if (step.name === 'detect') {
        clock += 7;
        return modelAnswer(step, inputs);
      }
      // Each request starts 5 ms after the one before; all are answered together.
      const index = (inputs.x!.data as Float32Array)[0]!;
      clock += 5;
      await settle();
      return { ...modelAnswer(step, inputs), ...records[index] };
    });
    const processors = runtime.runProcessor.bind(runtime);
    runtime.runProcessor = async (step, inputs, signal) => {
      clock += 2;
      return processors(step, inputs, signal);
    };
    const result = await runPipeline(ocr(), IMAGE, runtime, { now: () => clock });
    expect(result.steps).toEqual({
      decode: { ms: 2, kind: 'processor' },
      'det-input': { ms: 2, kind: 'processor' },
      detect: { ms: 7, kind: 'model' },
      boxes: { ms: 2, kind: 'processor' },
      crops: { ms: 2, kind: 'processor' },
      // Items start 2 ms apart (each call moves the clock before the next starts) and end together.
      'rec-input': { ms: 6, kind: 'processor', items: 3 },
      recognise: {
        ms: 15,
        kind: 'model',
        items: 3,
        queueMs: 3,
        batchWaitMs: 3,
        inferMs: 10,
        batchSizes: [3, 3, 3],
      },
      ctc: { ms: 6, kind: 'processor', items: 3 },
      lines: { ms: 2, kind: 'processor' },
    });
  });
});

describe('runPipeline: pipeline inputs and outputs', () => {
  it("checks each output's dtype against the file", async () => {
    const file = ocrFile();
    file.outputs.push({
      name: 'maps',
      dtype: 'float32',
      shape: [-1, 1, -1, -1],
      from: 'detect.sigmoid_0.tmp_0',
    });
    const spec = parsePipelineFile(file, FILE, LOOKUPS);
    const runtime = new FakeRuntime(1, async (step, inputs) =>
      step.name === 'detect'
        ? {
            outputs: {
              'sigmoid_0.tmp_0': { dtype: 'float16', shape: [1, 1, 1, 1], data: new Uint16Array(1) },
            },
          }
        : modelAnswer(step, inputs),
    );
    const error = await runPipeline(spec, IMAGE, runtime).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(PipelineTensorError);
    expect(error).toMatchObject({ role: 'output', tensor: 'maps' });
    expect((error as Error).message).toBe(
      `pipeline output 'maps' (from 'detect.sigmoid_0.tmp_0') is float16, but ${FILE} declares float32`,
    );
  });

  it('checks that each pipeline input is present and of its dtype', async () => {
    await expect(runPipeline(ocr(), {}, new FakeRuntime(1))).rejects.toThrow(
      new PipelineTensorError('input', 'image', "pipeline input 'image' is missing"),
    );
    await expect(runPipeline(ocr(), { image: f32([1], [0]) }, new FakeRuntime(1))).rejects.toThrow(
      `pipeline input 'image' is float32, but ${FILE} declares uint8`,
    );
  });

  it('passes a pipeline input through as an output', async () => {
    const file = ocrFile();
    file.outputs.push({ name: 'image', dtype: 'uint8', shape: [-1], from: 'image' });
    const result = await runPipeline(parsePipelineFile(file, FILE, LOOKUPS), IMAGE, new FakeRuntime(0));
    expect(result.outputs.image).toBe(IMAGE.image);
  });
});
