import { describe, expect, it } from 'vitest';
import { modelsOf } from './spec.ts';
import { errorOf, FILE, LOOKUPS, LOOKUPS_WITH_MODELS, ocrFile, PROCESSORS, step } from './test-support.ts';
import { parsePipelineFile } from './validate.ts';

describe('parsePipelineFile: the OCR pipeline', () => {
  it('normalises steps, references, per-item steps and gathering', () => {
    const spec = parsePipelineFile(ocrFile(), FILE, LOOKUPS);
    expect(spec.file).toBe(FILE);
    expect(spec.description).toBe('text lines of an image');
    expect(spec.inputs).toEqual([{ name: 'image', dtype: 'uint8', shape: [-1] }]);
    expect(
      spec.steps.map((s) => [
        s.name,
        s.kind,
        s.perItem,
        s.gathers,
        s.kind === 'processor' && s.fanOut,
        s.usedOutputs,
      ]),
    ).toEqual([
      ['decode', 'processor', false, false, false, ['image']],
      ['det-input', 'processor', false, false, false, ['x']],
      ['detect', 'model', false, false, false, ['sigmoid_0.tmp_0']],
      ['boxes', 'processor', false, false, false, ['boxes']],
      ['crops', 'processor', false, false, true, ['image', 'box']],
      ['rec-input', 'processor', true, false, false, ['x']],
      ['recognise', 'model', true, false, false, ['softmax_2.tmp_0']],
      ['ctc', 'processor', true, false, false, ['text', 'confidence']],
      ['lines', 'processor', false, true, false, ['text', 'boxes']],
    ]);
    expect(spec.steps[0]).toEqual({
      name: 'decode',
      index: 0,
      kind: 'processor',
      processor: 'image.decode',
      options: {},
      fanOut: false,
      inputs: { image: { name: 'image', mode: 'shared' } },
      perItem: false,
      gathers: false,
      outputs: PROCESSORS['image.decode']!.outputs,
      usedOutputs: ['image'],
    });
    expect(spec.steps[1]!.kind === 'processor' && spec.steps[1]!.options).toEqual({ limitSideLen: 960 });
    // Without a model lookup, a model step's outputs are unknown (and any output name is accepted).
    expect(spec.steps[2]).toEqual({
      name: 'detect',
      index: 2,
      kind: 'model',
      model: 'ppocr-det',
      inputs: { x: { step: 'det-input', name: 'x', mode: 'shared' } },
      perItem: false,
      gathers: false,
      usedOutputs: ['sigmoid_0.tmp_0'],
    });
    expect(spec.steps[4]!.inputs).toEqual({
      image: { step: 'decode', name: 'image', mode: 'shared' },
      boxes: { step: 'boxes', name: 'boxes', mode: 'shared' },
    });
    expect(spec.steps[5]!.inputs).toEqual({ image: { step: 'crops', name: 'image', mode: 'item' } });
    expect(spec.steps[6]).toMatchObject({ model: 'ppocr-rec', version: 1, forEach: 'crops' });
    // Everything after the first dot is the output's name.
    expect(spec.steps[7]!.inputs).toEqual({
      probabilities: { step: 'recognise', name: 'softmax_2.tmp_0', mode: 'item' },
    });
    expect(spec.steps[8]!.inputs).toEqual({
      text: { step: 'ctc', name: 'text', mode: 'gather' },
      boxes: { step: 'crops', name: 'box', mode: 'gather' },
    });
    expect(spec.outputs).toEqual([
      { name: 'text', dtype: 'string', shape: [-1], from: { step: 'lines', name: 'text', mode: 'shared' } },
      {
        name: 'boxes',
        dtype: 'float32',
        shape: [-1, 4],
        from: { step: 'lines', name: 'boxes', mode: 'shared' },
      },
      {
        name: 'confidence',
        dtype: 'float32',
        shape: [-1],
        from: { step: 'ctc', name: 'confidence', mode: 'gather' },
      },
    ]);
  });

  it("stores a model step's outputs when a model lookup is given", () => {
    const spec = parsePipelineFile(ocrFile(), FILE, LOOKUPS_WITH_MODELS);
    expect(spec.steps[6]!.outputs).toEqual([
      { name: 'softmax_2.tmp_0', dtype: 'float32', shape: [-1, -1, 97] },
    ]);
  });

  it('lists the distinct models it uses (modelsOf)', () => {
    expect(modelsOf(parsePipelineFile(ocrFile(), FILE, LOOKUPS))).toEqual([
      { model: 'ppocr-det' },
      { model: 'ppocr-rec', version: 1 },
    ]);
    const file = ocrFile();
    file.steps.push(
      { name: 'again', model: 'ppocr-rec', version: 1, inputs: { x: 'det-input.x' } },
      { name: 'default', model: 'ppocr-rec', inputs: { x: 'det-input.x' } },
      { name: 'det-again', model: 'ppocr-det', inputs: { x: 'det-input.x' } },
    );
    expect(modelsOf(parsePipelineFile(file, FILE, LOOKUPS))).toEqual([
      { model: 'ppocr-det' },
      { model: 'ppocr-rec', version: 1 },
      { model: 'ppocr-rec' },
    ]);
  });
});

describe('parsePipelineFile: steps', () => {
  it('refuses a second step of the same name, or one named as a pipeline input', () => {
    expect(errorOf((f) => Object.assign(step(f, 'boxes'), { name: 'detect' }))).toBe(
      `${FILE}: steps[3] 'detect'.name: 'detect' is already the name of steps[2]`,
    );
    expect(errorOf((f) => Object.assign(step(f, 'decode'), { name: 'image' }))).toBe(
      `${FILE}: steps[0] 'image'.name: 'image' is also the name of a pipeline input`,
    );
  });

  it('needs exactly one of model and processor; version and options go with one of them', () => {
    expect(errorOf((f) => Object.assign(step(f, 'detect'), { processor: 'image.decode' }))).toBe(
      `${FILE}: steps[2] 'detect': a step runs either a model or a processor, not both ('model' and 'processor' are set)`,
    );
    expect(errorOf((f) => delete step(f, 'detect').model)).toBe(
      `${FILE}: steps[2] 'detect': a step needs either 'model' or 'processor'`,
    );
    expect(errorOf((f) => Object.assign(step(f, 'decode'), { version: 2 }))).toBe(
      `${FILE}: steps[0] 'decode'.version: only a model step has a version`,
    );
    expect(errorOf((f) => Object.assign(step(f, 'detect'), { options: { threshold: 0.3 } }))).toBe(
      `${FILE}: steps[2] 'detect'.options: a model step takes no options (options are for processor steps)`,
    );
  });

  it('refuses unknown processors, and unknown models when models are looked up', () => {
    expect(errorOf((f) => Object.assign(step(f, 'boxes'), { processor: 'ppocr.text-boxes-v2' }))).toBe(
      `${FILE}: steps[3] 'boxes'.processor: unknown processor 'ppocr.text-boxes-v2'`,
    );
    expect(
      errorOf((f) => Object.assign(step(f, 'detect'), { model: 'ppocr-det-v9' }), LOOKUPS_WITH_MODELS),
    ).toBe(`${FILE}: steps[2] 'detect'.model: unknown model 'ppocr-det-v9'`);
    expect(errorOf((f) => Object.assign(step(f, 'recognise'), { version: 2 }), LOOKUPS_WITH_MODELS)).toBe(
      `${FILE}: steps[6] 'recognise'.model: unknown model 'ppocr-rec' version 2`,
    );
    // Without a model lookup any model is accepted, its outputs too.
    const file = ocrFile();
    Object.assign(step(file, 'boxes'), { inputs: { maps: 'detect.anything' } });
    expect(parsePipelineFile(file, FILE, LOOKUPS).steps[2]!.usedOutputs).toEqual(['anything']);
  });

  it('supplies every declared input of the processor or model, and nothing else', () => {
    expect(errorOf((f) => Object.assign(step(f, 'crops'), { inputs: { image: 'decode.image' } }))).toBe(
      `${FILE}: steps[4] 'crops'.inputs: input 'boxes' of processor image.crop-boxes is not supplied`,
    );
    expect(
      errorOf((f) => Object.assign(step(f, 'decode'), { inputs: { image: 'image', format: 'image' } })),
    ).toBe(
      `${FILE}: steps[0] 'decode'.inputs.format: processor image.decode has no input 'format' (its inputs: 'image')`,
    );
    expect(
      errorOf(
        (f) => Object.assign(step(f, 'detect'), { inputs: { input: 'det-input.x' } }),
        LOOKUPS_WITH_MODELS,
      ),
    ).toBe(`${FILE}: steps[2] 'detect'.inputs.input: model ppocr-det has no input 'input' (its inputs: 'x')`);
  });

  it('resolves references to pipeline inputs and earlier steps only', () => {
    expect(
      errorOf((f) => {
        f.steps.splice(3, 1);
      }),
    ).toBe(
      `${FILE}: steps[3] 'crops': input 'boxes' refers to 'boxes.boxes', but no earlier step is named 'boxes'`,
    );
    expect(errorOf((f) => Object.assign(step(f, 'decode'), { inputs: { image: 'det-input.x' } }))).toBe(
      `${FILE}: steps[0] 'decode': input 'image' refers to 'det-input.x', but no earlier step is named 'det-input' (steps[1] 'det-input' comes after it: steps run in the order they are declared)`,
    );
    expect(errorOf((f) => Object.assign(step(f, 'decode'), { inputs: { image: 'decode.image' } }))).toBe(
      `${FILE}: steps[0] 'decode': input 'image' refers to 'decode.image', but a step cannot read its own outputs`,
    );
    expect(errorOf((f) => Object.assign(step(f, 'decode'), { inputs: { image: 'picture' } }))).toBe(
      `${FILE}: steps[0] 'decode': input 'image' refers to 'picture', but the pipeline has no input 'picture'`,
    );
    expect(errorOf((f) => Object.assign(step(f, 'det-input'), { inputs: { image: 'decode' } }))).toBe(
      `${FILE}: steps[1] 'det-input': input 'image' refers to 'decode', but the pipeline has no input 'decode' (a step's output is 'decode.<output>')`,
    );
    expect(errorOf((f) => Object.assign(step(f, 'det-input'), { inputs: { image: 'decode.pixels' } }))).toBe(
      `${FILE}: steps[1] 'det-input': input 'image' refers to 'decode.pixels', but step 'decode' (processor image.decode) has no output 'pixels' (its outputs: 'image')`,
    );
    expect(
      errorOf(
        (f) => Object.assign(step(f, 'boxes'), { inputs: { maps: 'detect.maps' } }),
        LOOKUPS_WITH_MODELS,
      ),
    ).toBe(
      `${FILE}: steps[3] 'boxes': input 'maps' refers to 'detect.maps', but step 'detect' (model ppocr-det) has no output 'maps' (its outputs: 'sigmoid_0.tmp_0')`,
    );
  });

  it('checks dtypes where both ends declare one', () => {
    expect(
      errorOf((f) =>
        Object.assign(step(f, 'crops'), { inputs: { image: 'det-input.x', boxes: 'boxes.boxes' } }),
      ),
    ).toBe(
      `${FILE}: steps[4] 'crops': input 'image' refers to 'det-input.x', which is float32, but processor image.crop-boxes takes uint8`,
    );
    expect(errorOf((f) => Object.assign(f.inputs[0]!, { dtype: 'float32' }))).toBe(
      `${FILE}: steps[0] 'decode': input 'image' refers to 'image', which is float32, but processor image.decode takes uint8`,
    );
    expect(
      errorOf(
        (f) => Object.assign(step(f, 'detect'), { inputs: { x: 'decode.image' } }),
        LOOKUPS_WITH_MODELS,
      ),
    ).toBe(
      `${FILE}: steps[2] 'detect': input 'x' refers to 'decode.image', which is uint8, but model ppocr-det takes float32`,
    );
    // Unknown at either end: accepted (the model's input is unknown without a model lookup).
    const file = ocrFile();
    Object.assign(step(file, 'detect'), { inputs: { x: 'decode.image' } });
    expect(parsePipelineFile(file, FILE, LOOKUPS).steps[2]!.inputs).toEqual({
      x: { step: 'decode', name: 'image', mode: 'shared' },
    });
  });
});
