import { describe, expect, it } from 'vitest';
import { errorOf, FILE, LOOKUPS, type OcrFile, ocrFile, step } from './test-support.ts';
import { parsePipelineFile } from './validate.ts';

describe('parsePipelineFile: fan-out and fan-in', () => {
  it('runs a forEach step per item of an earlier fan-out step only', () => {
    expect(errorOf((f) => Object.assign(step(f, 'rec-input'), { forEach: 'ctc' }))).toBe(
      `${FILE}: steps[5] 'rec-input'.forEach: no earlier step is named 'ctc'`,
    );
    expect(errorOf((f) => Object.assign(step(f, 'rec-input'), { forEach: 'boxes' }))).toBe(
      `${FILE}: steps[5] 'rec-input'.forEach: step 'boxes' (processor ppocr.text-boxes) does not fan out: only a fan-out processor's step has items`,
    );
    expect(errorOf((f) => Object.assign(step(f, 'rec-input'), { forEach: 'detect' }))).toBe(
      `${FILE}: steps[5] 'rec-input'.forEach: step 'detect' (model ppocr-det) does not fan out: only a fan-out processor's step has items`,
    );
  });

  it('refuses nested fan-out', () => {
    expect(
      errorOf((f) => {
        f.steps.splice(6, 0, {
          name: 'crops-again',
          processor: 'image.crop-boxes',
          forEach: 'crops',
          inputs: { image: 'crops.image', boxes: 'boxes.boxes' },
        });
      }),
    ).toBe(
      `${FILE}: steps[6] 'crops-again': nested fan-out is not supported: processor image.crop-boxes fans out, and the step runs for each item of 'crops'`,
    );
  });

  it("refuses a per-item step reading another fan-out's items", () => {
    const twoFanOuts = (f: OcrFile, inputs: Record<string, string>, forEach: string): void => {
      f.steps.splice(8, 0, {
        name: 'words',
        processor: 'image.crop-boxes',
        inputs: { image: 'decode.image', boxes: 'boxes.boxes' },
      });
      f.steps.splice(9, 0, { name: 'word-input', processor: 'ppocr.recogniser-input', forEach, inputs });
    };
    expect(errorOf((f) => twoFanOuts(f, { image: 'words.image' }, 'crops'))).toBe(
      `${FILE}: steps[9] 'word-input': input 'image' refers to 'words.image', an item of fan-out 'words', but the step runs for each item of 'crops': a step cannot read the items of another fan-out`,
    );
    expect(errorOf((f) => twoFanOuts(f, { image: 'rec-input.x' }, 'words'))).toBe(
      `${FILE}: steps[9] 'word-input': input 'image' refers to 'rec-input.x', an item of fan-out 'crops', but the step runs for each item of 'words': a step cannot read the items of another fan-out`,
    );
  });

  it('shares steps without forEach with every item, and gathers per-item steps into steps without', () => {
    const file = ocrFile();
    Object.assign(step(file, 'rec-input'), { inputs: { image: 'decode.image' } });
    const spec = parsePipelineFile(file, FILE, LOOKUPS);
    expect(spec.steps[5]!.inputs).toEqual({ image: { step: 'decode', name: 'image', mode: 'shared' } });
    expect(spec.steps[5]!.gathers).toBe(false);
    // A non-per-item step gathers a per-item model step too.
    const gathering = ocrFile();
    gathering.steps.push({
      name: 'all',
      processor: 'ocr.ctc-decode',
      inputs: { probabilities: 'recognise.softmax_2.tmp_0' },
    });
    const all = parsePipelineFile(gathering, FILE, LOOKUPS).steps[9]!;
    expect([all.perItem, all.gathers, all.inputs]).toEqual([
      false,
      true,
      { probabilities: { step: 'recognise', name: 'softmax_2.tmp_0', mode: 'gather' } },
    ]);
  });
});

describe('parsePipelineFile: outputs', () => {
  it('resolves from, gathering per-item steps, and checks the declared dtype', () => {
    const file = ocrFile();
    file.outputs.push({ name: 'raw', dtype: 'uint8', shape: [-1], from: 'image' });
    file.outputs.push({ name: 'crops', dtype: 'uint8', shape: [-1, -1, 3], from: 'crops.image' });
    expect(
      parsePipelineFile(file, FILE, LOOKUPS)
        .outputs.slice(3)
        .map((output) => output.from),
    ).toEqual([
      { name: 'image', mode: 'shared' },
      { step: 'crops', name: 'image', mode: 'gather' },
    ]);
    expect(errorOf((f) => Object.assign(f.outputs[0]!, { from: 'words.text' }))).toBe(
      `${FILE}: outputs[0] 'text': 'from' refers to 'words.text', but no step is named 'words'`,
    );
    expect(errorOf((f) => Object.assign(f.outputs[0]!, { from: 'lines.words' }))).toBe(
      `${FILE}: outputs[0] 'text': 'from' refers to 'lines.words', but step 'lines' (processor ocr.lines) has no output 'words' (its outputs: 'text', 'boxes')`,
    );
    expect(errorOf((f) => Object.assign(f.outputs[2]!, { dtype: 'float64' }))).toBe(
      `${FILE}: outputs[2] 'confidence': declared float64, but 'from' refers to 'ctc.confidence', which is float32`,
    );
  });
});
