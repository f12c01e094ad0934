import { describe, expect, it } from 'vitest';
import { errorOf, errorOfRaw, FILE, step } from './test-support.ts';

describe('parsePipelineFile: structure', () => {
  it('refuses what is not an object, and unknown fields at every level', () => {
    expect(errorOfRaw([])).toBe(`${FILE}: (root): expected a JSON object`);
    expect(errorOf((f) => Object.assign(f, { extra: 1 }))).toBe(`${FILE}: extra: unknown field`);
    expect(errorOf((f) => Object.assign(f.inputs[0]!, { layout: 'hwc' }))).toBe(
      `${FILE}: inputs[0] 'image'.layout: unknown field`,
    );
    expect(errorOf((f) => Object.assign(step(f, 'detect'), { optoins: {} }))).toBe(
      `${FILE}: steps[2] 'detect'.optoins: unknown field`,
    );
  });

  it('checks tensor specs: dtype, shape, unique names, no dot in an input name', () => {
    expect(errorOf((f) => Object.assign(f.inputs[0]!, { dtype: 'uint7' }))).toBe(
      `${FILE}: inputs[0] 'image'.dtype: expected one of float32, float64, float16, int8, int16, int32, int64, uint8, uint16, uint32, uint64, bool, string`,
    );
    expect(errorOf((f) => Object.assign(f.outputs[1]!, { shape: [-1, -2] }))).toBe(
      `${FILE}: outputs[1] 'boxes'.shape[1]: expected integers ≥ -1 (-1: a dynamic dimension)`,
    );
    expect(errorOf((f) => Object.assign(f.inputs[0]!, { shape: [1.5] }))).toBe(
      `${FILE}: inputs[0] 'image'.shape[0]: expected integers ≥ -1 (-1: a dynamic dimension)`,
    );
    expect(errorOf((f) => f.inputs.push({ name: 'image', dtype: 'uint8', shape: [] }))).toBe(
      `${FILE}: inputs[1] 'image'.name: 'image' is already the name of inputs[0]`,
    );
    expect(
      errorOf((f) => f.outputs.push({ name: 'text', dtype: 'string', shape: [-1], from: 'ctc.text' })),
    ).toBe(`${FILE}: outputs[3] 'text'.name: 'text' is already the name of outputs[0]`);
    expect(errorOf((f) => Object.assign(f.inputs[0]!, { name: 'in.image' }))).toBe(
      `${FILE}: inputs[0] 'in.image'.name: a pipeline input's name cannot contain '.': references read 'a.b' as output 'b' of step 'a'`,
    );
  });

  it('needs at least one step and one output', () => {
    expect(errorOf((f) => Object.assign(f, { steps: [] }))).toBe(
      `${FILE}: steps: a pipeline needs at least one step`,
    );
    expect(errorOf((f) => Object.assign(f, { outputs: [] }))).toBe(
      `${FILE}: outputs: a pipeline needs at least one output`,
    );
  });

  it('checks step names, model and processor names, versions, options and reference syntax', () => {
    expect(errorOf((f) => Object.assign(step(f, 'det-input'), { name: 'det input' }))).toBe(
      `${FILE}: steps[1] 'det input'.name: expected a step name: letters, digits, '-' and '_'`,
    );
    expect(errorOf((f) => Object.assign(step(f, 'detect'), { model: '../etc' }))).toBe(
      `${FILE}: steps[2] 'detect'.model: expected a model name: letters, digits, '.', '-' and '_', first a letter or digit`,
    );
    expect(errorOf((f) => Object.assign(step(f, 'decode'), { processor: 'image decode' }))).toBe(
      `${FILE}: steps[0] 'decode'.processor: expected a processor name: letters, digits, '.', '-' and '_'`,
    );
    expect(errorOf((f) => Object.assign(step(f, 'recognise'), { version: 0 }))).toBe(
      `${FILE}: steps[6] 'recognise'.version: expected a positive integer`,
    );
    expect(errorOf((f) => Object.assign(step(f, 'recognise'), { version: '1' }))).toBe(
      `${FILE}: steps[6] 'recognise'.version: expected a positive integer`,
    );
    expect(errorOf((f) => Object.assign(step(f, 'det-input'), { options: [960] }))).toBe(
      `${FILE}: steps[1] 'det-input'.options: expected a JSON object`,
    );
    expect(errorOf((f) => Object.assign(step(f, 'det-input'), { inputs: { image: '.image' } }))).toBe(
      `${FILE}: steps[1] 'det-input'.inputs.image: expected a reference: a pipeline input's name, or '<step>.<output>'`,
    );
    expect(errorOf((f) => Object.assign(f.outputs[0]!, { from: 'lines.' }))).toBe(
      `${FILE}: outputs[0] 'text'.from: expected a reference: a pipeline input's name, or '<step>.<output>'`,
    );
  });
});
