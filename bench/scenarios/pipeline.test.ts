import { describe, expect, it } from 'vitest';
import type { BenchPipeline } from '../lib/models.ts';
import { batchesBetween, pipelineJsonBody, readPipelineAnswer, StepTally } from './pipeline.ts';

const LINES = ['one', 'two'];

function answer(status: number, value: object) {
  return { status, body: Buffer.from(JSON.stringify(value)) };
}

function record(text: string[], steps: object = {}, queueMs = 2, inferMs = 100) {
  return {
    id: 'r1',
    status: 'succeeded',
    outputs: { text: { dtype: 'string', shape: [text.length], data: text } },
    timings: { queueMs, inferMs, totalMs: inferMs + queueMs, steps },
  };
}

describe('pipelineJsonBody', () => {
  it('sends the bytes as a uint8 tensor in base64, with the cache off', () => {
    const body = JSON.parse(pipelineJsonBody('image', Uint8Array.from([1, 2, 255])).toString('utf8'));
    expect(body).toEqual({
      inputs: { image: { dtype: 'uint8', shape: [3], data: { b64: 'AQL/' } } },
      cache: false,
    });
  });
});

describe('readPipelineAnswer', () => {
  it('takes a succeeded record that reads the expected lines, with its timings', () => {
    const steps = { decode: { kind: 'processor', ms: 3 } };
    expect(readPipelineAnswer(answer(200, record(LINES, steps)), LINES)).toEqual({
      outcome: { ok: true, inferMs: 100 },
      queueMs: 2,
      steps,
    });
  });

  it('counts other text, a failed record, a refusal and an unfinished wait as failures', () => {
    const error = (status: number, value: object) => readPipelineAnswer(answer(status, value), LINES).outcome;
    expect(error(200, record(['one']))).toEqual({ ok: false, error: 'text other than the image reads' });
    expect(error(200, record(['one', 'tw0']))).toEqual({
      ok: false,
      error: 'text other than the image reads',
    });
    expect(error(200, { status: 'failed', error: { code: 'pipeline_step_failed' } })).toEqual({
      ok: false,
      error: 'record failed (pipeline_step_failed)',
    });
    expect(error(503, { title: 'Service Unavailable', detail: 'ppocr-det is unavailable' })).toEqual({
      ok: false,
      error: 'HTTP 503: ppocr-det is unavailable',
    });
    expect(error(202, { id: 'r1', status: 'queued' })).toEqual({
      ok: false,
      error: 'not finished within the wait',
    });
  });
});

describe('StepTally', () => {
  it("gives each step's means over the succeeded records, in the order the steps ran", () => {
    const tally = new StepTally();
    const model = (ms: number, queueMs: number, inferMs: number, batchSizes: number[], items?: number) => ({
      kind: 'model',
      ms,
      queueMs,
      inferMs,
      batchSizes,
      ...(items === undefined ? {} : { items }),
    });
    tally.add({
      outcome: { ok: true },
      queueMs: 1,
      steps: {
        decode: { kind: 'processor', ms: 10 },
        detect: model(40, 5, 30, [1]),
        read: model(20, 2, 8, [3, 3, 3], 3),
      },
    });
    tally.add({
      outcome: { ok: true },
      queueMs: 3,
      steps: {
        decode: { kind: 'processor', ms: 20 },
        detect: model(60, 15, 40, [2]),
        read: model(30, 4, 12, [6, 5, 5], 3),
      },
    });
    // A failed answer is not counted.
    tally.add({ outcome: { ok: false, error: 'x' }, steps: { decode: { kind: 'processor', ms: 1000 } } });
    expect(tally.meanQueueMs()).toBe(2);
    expect(tally.result()).toEqual([
      { step: 'decode', kind: 'processor', requests: 2, meanMs: 15 },
      {
        step: 'detect',
        kind: 'model',
        requests: 2,
        meanMs: 50,
        meanQueueMs: 10,
        meanInferMs: 35,
        largestBatch: 2,
      },
      {
        step: 'read',
        kind: 'model',
        requests: 2,
        meanMs: 25,
        meanItems: 3,
        meanQueueMs: 3,
        meanInferMs: 10,
        largestBatch: 6,
      },
    ]);
    expect(new StepTally().meanQueueMs()).toBeUndefined();
  });
});

describe('batchesBetween', () => {
  it("gives each model's mean batch from the change of its batch counters, with the steps that run it", () => {
    const pipeline: BenchPipeline = {
      name: 'ocr',
      folder: '/nowhere',
      modelSteps: [
        { step: 'detect', model: 'det' },
        { step: 'recognise', model: 'rec' },
      ],
      models: {
        det: { maxBatchSize: 4, maxBatchDelayMs: 2 },
        rec: { maxBatchSize: 8, maxBatchDelayMs: 5 },
      },
    };
    const before = new Map([
      ['det', { batches: 10, items: 10 }],
      ['rec', { batches: 5, items: 15 }],
    ]);
    const after = new Map([
      ['det', { batches: 10, items: 10 }],
      ['rec', { batches: 9, items: 33 }],
    ]);
    expect(batchesBetween(pipeline, before, after)).toEqual([
      { model: 'det', steps: ['detect'], batches: 0, items: 0, meanBatchSize: undefined },
      { model: 'rec', steps: ['recognise'], batches: 4, items: 18, meanBatchSize: 4.5 },
    ]);
  });
});
