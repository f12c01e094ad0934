import type { ModelSignature } from '@inferq/protocol';
import { describe, expect, it } from 'vitest';
import { croppedSize, inferMaxBatchSize, ModelConfigError, resolveModelConfig } from './config.ts';

const FILE = '/repo/ocr/config.json';

const batchable: ModelSignature = {
  inputs: [{ name: 'x', dtype: 'float32', shape: [-1, 3, 48, -1] }],
  outputs: [{ name: 'y', dtype: 'float32', shape: [-1, 2] }],
};

/** A text recogniser: a sequence as wide as the image / 8, and a score per image. */
const recogniser: ModelSignature = {
  inputs: [{ name: 'x', dtype: 'float32', shape: [-1, 3, 48, -1] }],
  outputs: [
    { name: 'probs', dtype: 'float32', shape: [-1, -1, 6625] },
    { name: 'score', dtype: 'float32', shape: [-1, 1] },
  ],
};

const fixed: ModelSignature = {
  inputs: [{ name: 'x', dtype: 'float32', shape: [1, 4] }],
  outputs: [{ name: 'y', dtype: 'float32', shape: [1, 4] }],
};

function errorOf(run: () => unknown): ModelConfigError {
  try {
    run();
  } catch (error) {
    if (error instanceof ModelConfigError) return error;
    throw error;
  }
  throw new Error('expected a ModelConfigError');
}

describe('inferMaxBatchSize', () => {
  it('batches only when every input and output has a dynamic first axis', () => {
    expect(inferMaxBatchSize(batchable)).toBe(32);
    expect(inferMaxBatchSize(fixed)).toBe(0);
    expect(
      inferMaxBatchSize({
        inputs: batchable.inputs,
        outputs: [...batchable.outputs, { name: 'count', dtype: 'int64', shape: [1] }],
      }),
    ).toBe(0);
    expect(
      inferMaxBatchSize({ inputs: [{ name: 's', dtype: 'float32', shape: [] }], outputs: batchable.outputs }),
    ).toBe(0);
  });
});

describe('resolveModelConfig', () => {
  it('fills every default when the file is absent', () => {
    expect(resolveModelConfig(undefined, FILE, batchable)).toEqual({
      maxBatchSize: 32,
      maxBatchDelayMs: 2,
      preferredBatchSizes: [],
      executionProviders: ['cpu'],
      intraOpThreads: 0,
      spinThreads: false,
      placement: 'auto',
      cache: { enabled: true, ttlSeconds: 3600 },
      warmup: true,
      pad: {},
      crop: {},
    });
    expect(resolveModelConfig({}, FILE, fixed).maxBatchSize).toBe(0);
  });

  it('keeps every field the file sets', () => {
    const config = resolveModelConfig(
      {
        maxBatchSize: 16,
        maxBatchDelayMs: 7.5,
        preferredBatchSizes: [16, 4, 8, 4],
        latencyObjectiveMs: 100,
        executionProviders: ['cuda', 'cpu'],
        intraOpThreads: 2,
        spinThreads: true,
        placement: 'thread',
        cache: { enabled: false },
        warmup: false,
        pad: { x: { axis: 3, value: 0.5 } },
        crop: { y: [] },
      },
      FILE,
      batchable,
    );
    expect(config).toEqual({
      maxBatchSize: 16,
      maxBatchDelayMs: 7.5,
      preferredBatchSizes: [4, 8, 16],
      latencyObjectiveMs: 100,
      executionProviders: ['cuda', 'cpu'],
      intraOpThreads: 2,
      spinThreads: true,
      placement: 'thread',
      cache: { enabled: false, ttlSeconds: 3600 },
      warmup: false,
      pad: { x: { axis: 3, value: 0.5 } },
      crop: { y: [] },
    });
    expect(resolveModelConfig({ pad: { x: { axis: 3 } }, crop: { y: [] } }, FILE, batchable).pad).toEqual({
      x: { axis: 3, value: 0 },
    });
  });

  it('resolves crop rules with their defaults', () => {
    const config = resolveModelConfig(
      {
        pad: { x: { axis: 3 } },
        crop: { probs: [{ axis: 1, input: 'x', offset: 3, divisor: 8, min: 1 }], score: [] },
      },
      FILE,
      recogniser,
    );
    expect(config.crop).toEqual({
      probs: [{ axis: 1, input: 'x', multiplier: 1, offset: 3, divisor: 8, min: 1 }],
      score: [],
    });
    const rule = config.crop.probs![0]!;
    // PP-OCRv4's recogniser, measured: widths 1..12 -> 1, 13..20 -> 2, 160 -> 20, 167 -> 21, 320 -> 40
    expect([1, 12, 13, 20, 21, 160, 167, 240, 320].map((width) => croppedSize(rule, width))).toEqual([
      1, 1, 2, 2, 3, 20, 21, 30, 40,
    ]);
    expect(croppedSize({ axis: 1, input: 'x', multiplier: 2, offset: -1, divisor: 3, min: 0 }, 5)).toBe(3);
  });

  it('accepts maxBatchSize 0 on a batchable model', () => {
    expect(resolveModelConfig({ maxBatchSize: 0 }, FILE, batchable).maxBatchSize).toBe(0);
  });

  it.each([
    [{ maxBatchsize: 8 }, 'maxBatchsize', /unknown field/],
    [{ cache: { enabled: true, ttl: 5 } }, 'cache.ttl', /unknown field/],
    [{ maxBatchSize: -1 }, 'maxBatchSize', /./],
    [{ maxBatchSize: 2.5 }, 'maxBatchSize', /./],
    [{ maxBatchSize: '8' }, 'maxBatchSize', /./],
    [{ maxBatchDelayMs: -1 }, 'maxBatchDelayMs', /./],
    [{ executionProviders: ['gpu'] }, 'executionProviders.0', /./],
    [{ executionProviders: [] }, 'executionProviders', /./],
    [{ intraOpThreads: 1.5 }, 'intraOpThreads', /./],
    [{ cache: { ttlSeconds: 0 } }, 'cache.ttlSeconds', /./],
    [{ warmup: 'yes' }, 'warmup', /./],
    [{ placement: 'gpu' }, 'placement', /./],
    [{ preferredBatchSizes: [0] }, 'preferredBatchSizes.0', /./],
    [{ latencyObjectiveMs: 0 }, 'latencyObjectiveMs', /./],
    [{ latencyObjectiveMs: '100' }, 'latencyObjectiveMs', /./],
    [{ preferredBatchSizes: [64] }, 'preferredBatchSizes', /64 is larger than maxBatchSize 32/],
    [{ pad: { x: { axis: 0 } } }, 'pad.x.axis', /./],
    [{ pad: { x: { axis: 3, fill: 1 } } }, 'pad.x.fill', /unknown field/],
    [{ pad: { image: { axis: 3 } } }, 'pad.image', /no input 'image' \(inputs: 'x'\)/],
    [{ pad: { x: { axis: 4 } } }, 'pad.x.axis', /out of range for rank 4/],
    [{ pad: { x: { axis: 2 } } }, 'pad.x.axis', /fixed \(48\)/],
    [{ maxBatchSize: 0, pad: { x: { axis: 3 } } }, 'pad.x', /maxBatchSize is 0/],
    [[], '(root)', /./],
    [{ crop: { y: [] } }, 'crop.y', /no input is padded/],
  ])('rejects %j naming the file and the field %s', (raw, field, detail) => {
    const error = errorOf(() => resolveModelConfig(raw, FILE, batchable));
    expect(error.file).toBe(FILE);
    expect(error.field).toBe(field);
    expect(error.message.startsWith(`${FILE}: ${field}: `)).toBe(true);
    expect(error.message).toMatch(detail);
  });

  const ruleX = { axis: 1, input: 'x', divisor: 8 };
  it.each([
    [{ pad: { x: { axis: 3 } } }, 'crop.probs', /every output needs a crop rule/],
    [
      { pad: { x: { axis: 3 } }, crop: { probs: [ruleX] } },
      'crop.score',
      /pad\.x.*every output needs a crop rule/,
    ],
    [
      { pad: { x: { axis: 3 } }, crop: { probs: [ruleX], score: [], logits: [] } },
      'crop.logits',
      /no output 'logits' \(outputs: 'probs', 'score'\)/,
    ],
    [
      { pad: { x: { axis: 3 } }, crop: { probs: [{ ...ruleX, input: 'y' }], score: [] } },
      'crop.probs.0.input',
      /'y' is not a padded input \(padded: 'x'\)/,
    ],
    [
      { pad: { x: { axis: 3 } }, crop: { probs: [{ ...ruleX, axis: 3 }], score: [] } },
      'crop.probs.0.axis',
      /out of range for 'probs' of rank 3/,
    ],
    [
      { pad: { x: { axis: 3 } }, crop: { probs: [{ ...ruleX, axis: 2 }], score: [] } },
      'crop.probs.0.axis',
      /fixed \(6625\)/,
    ],
    [
      { pad: { x: { axis: 3 } }, crop: { probs: [ruleX, ruleX], score: [] } },
      'crop.probs.1.axis',
      /two rules/,
    ],
    [
      { pad: { x: { axis: 3 } }, crop: { probs: [{ ...ruleX, axis: 0 }], score: [] } },
      'crop.probs.0.axis',
      /./,
    ],
    [
      { pad: { x: { axis: 3 } }, crop: { probs: [{ ...ruleX, divisor: 0 }], score: [] } },
      'crop.probs.0.divisor',
      /./,
    ],
    [
      { pad: { x: { axis: 3 } }, crop: { probs: [{ ...ruleX, scale: 2 }], score: [] } },
      'crop.probs.0.scale',
      /unknown field/,
    ],
    [{ pad: { x: { axis: 3 } }, crop: { probs: {}, score: [] } }, 'crop.probs', /./],
  ])('refuses padding %j without a sound crop rule, naming the field %s', (raw, field, detail) => {
    const error = errorOf(() => resolveModelConfig(raw, FILE, recogniser));
    expect(error.file).toBe(FILE);
    expect(error.field).toBe(field);
    expect(error.message.startsWith(`${FILE}: ${field}: `)).toBe(true);
    expect(error.message).toMatch(detail);
  });

  it('refuses a batch size on a model without a dynamic first axis', () => {
    const error = errorOf(() => resolveModelConfig({ maxBatchSize: 4 }, FILE, fixed));
    expect(error.field).toBe('maxBatchSize');
    expect(error.message).toContain("'x' has shape [1, 4]");
  });

  it('refuses padding a string input', () => {
    const strings: ModelSignature = {
      inputs: [{ name: 'words', dtype: 'string', shape: [-1, -1] }],
      outputs: [{ name: 'ids', dtype: 'int64', shape: [-1, -1] }],
    };
    expect(
      errorOf(() => resolveModelConfig({ pad: { words: { axis: 1 } } }, FILE, strings)).message,
    ).toContain('string inputs cannot be padded');
  });
});
