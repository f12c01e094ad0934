/** Fixtures of the unit tests: the OCR pipeline, its processors and models. */
import type { DType, Tensor, TensorMap, TensorSpec } from '@inferq/protocol';
import type { ModelStepResult, StepRuntime } from './executor.ts';
import {
  type ModelInfo,
  PipelineFileError,
  type PipelineLookups,
  type ProcessorInfo,
  type StepSpec,
} from './spec.ts';
import { parsePipelineFile } from './validate.ts';

export const FILE = '/models/ocr/1/pipeline.json';

const spec = (name: string, dtype: DType, shape: number[]): TensorSpec => ({ name, dtype, shape });

export const PROCESSORS: Record<string, ProcessorInfo> = {
  'image.decode': {
    fanOut: false,
    inputs: [spec('image', 'uint8', [-1])],
    outputs: [spec('image', 'uint8', [-1, -1, 3])],
  },
  'ppocr.detector-input': {
    fanOut: false,
    inputs: [spec('image', 'uint8', [-1, -1, 3])],
    outputs: [spec('x', 'float32', [1, 3, -1, -1])],
  },
  'ppocr.text-boxes': {
    fanOut: false,
    inputs: [spec('maps', 'float32', [1, 1, -1, -1])],
    outputs: [spec('boxes', 'float32', [-1, 4])],
  },
  'image.crop-boxes': {
    fanOut: true,
    inputs: [spec('image', 'uint8', [-1, -1, 3]), spec('boxes', 'float32', [-1, 4])],
    outputs: [spec('image', 'uint8', [-1, -1, 3]), spec('box', 'float32', [1, 4])],
  },
  'ppocr.recogniser-input': {
    fanOut: false,
    inputs: [spec('image', 'uint8', [-1, -1, 3])],
    outputs: [spec('x', 'float32', [1, 3, 48, -1])],
  },
  'ocr.ctc-decode': {
    fanOut: false,
    inputs: [spec('probabilities', 'float32', [1, -1, -1])],
    outputs: [spec('text', 'string', [1]), spec('confidence', 'float32', [1])],
  },
  'ocr.lines': {
    fanOut: false,
    inputs: [spec('text', 'string', [-1]), spec('boxes', 'float32', [-1, 4])],
    outputs: [spec('text', 'string', [-1]), spec('boxes', 'float32', [-1, 4])],
  },
};

/** PaddleOCR's models name their outputs with dots, as Paddle's exporter does. */
export const MODELS: Record<string, ModelInfo> = {
  'ppocr-det': {
    inputs: [spec('x', 'float32', [-1, 3, -1, -1])],
    outputs: [spec('sigmoid_0.tmp_0', 'float32', [-1, 1, -1, -1])],
  },
  'ppocr-rec': {
    inputs: [spec('x', 'float32', [-1, 3, 48, -1])],
    outputs: [spec('softmax_2.tmp_0', 'float32', [-1, -1, 97])],
  },
};

export const LOOKUPS: PipelineLookups = { processors: (name) => PROCESSORS[name] };

export const LOOKUPS_WITH_MODELS: PipelineLookups = {
  processors: (name) => PROCESSORS[name],
  models: (name, version) => (version === undefined || version === 1 ? MODELS[name] : undefined),
};

/** A fresh copy of the OCR pipeline's file (tests change it). */
export function ocrFile(): {
  description?: string;
  inputs: Record<string, unknown>[];
  outputs: Record<string, unknown>[];
  steps: Record<string, unknown>[];
} {
  return {
    description: 'text lines of an image',
    inputs: [{ name: 'image', dtype: 'uint8', shape: [-1] }],
    outputs: [
      { name: 'text', dtype: 'string', shape: [-1], from: 'lines.text' },
      { name: 'boxes', dtype: 'float32', shape: [-1, 4], from: 'lines.boxes' },
      { name: 'confidence', dtype: 'float32', shape: [-1], from: 'ctc.confidence' },
    ],
    steps: [
      { name: 'decode', processor: 'image.decode', inputs: { image: 'image' } },
      {
        name: 'det-input',
        processor: 'ppocr.detector-input',
        inputs: { image: 'decode.image' },
        options: { limitSideLen: 960 },
      },
      { name: 'detect', model: 'ppocr-det', inputs: { x: 'det-input.x' } },
      { name: 'boxes', processor: 'ppocr.text-boxes', inputs: { maps: 'detect.sigmoid_0.tmp_0' } },
      {
        name: 'crops',
        processor: 'image.crop-boxes',
        inputs: { image: 'decode.image', boxes: 'boxes.boxes' },
      },
      {
        name: 'rec-input',
        processor: 'ppocr.recogniser-input',
        forEach: 'crops',
        inputs: { image: 'crops.image' },
      },
      { name: 'recognise', model: 'ppocr-rec', version: 1, forEach: 'crops', inputs: { x: 'rec-input.x' } },
      {
        name: 'ctc',
        processor: 'ocr.ctc-decode',
        forEach: 'crops',
        inputs: { probabilities: 'recognise.softmax_2.tmp_0' },
      },
      { name: 'lines', processor: 'ocr.lines', inputs: { text: 'ctc.text', boxes: 'crops.box' } },
    ],
  };
}

export const f32 = (shape: number[], values: number[]): Tensor => ({
  dtype: 'float32',
  shape,
  data: new Float32Array(values),
});
export const IMAGE: TensorMap = { image: { dtype: 'uint8', shape: [4], data: new Uint8Array([1, 2, 3, 4]) } };

/**
 * The OCR pipeline's calls, faked: `lines` text boxes are found; crop i carries box [i, i, i+1, i+1]
 * and the recogniser's output for it is [i], which CTC decodes to `line i` with confidence i / 10.
 * `model` may replace the model calls (the default answers at once).
 */
export class FakeRuntime implements StepRuntime {
  readonly calls: string[] = [];
  readonly signals: AbortSignal[] = [];

  constructor(
    private readonly lines: number,
    private readonly model?: (
      step: StepSpec,
      inputs: TensorMap,
      signal: AbortSignal,
    ) => Promise<ModelStepResult>,
  ) {}

  async runProcessor(
    step: StepSpec,
    inputs: TensorMap,
    signal: AbortSignal,
  ): Promise<TensorMap | TensorMap[]> {
    this.calls.push(step.name);
    this.signals.push(signal);
    if (step.kind !== 'processor') throw new Error('not a processor');
    switch (step.processor) {
      case 'image.decode':
        return { image: { dtype: 'uint8', shape: [1, 1, 3], data: new Uint8Array(3) } };
      case 'ppocr.detector-input':
        return { x: f32([1, 3, 1, 1], [0, 0, 0]) };
      case 'ppocr.text-boxes':
        return { boxes: f32([this.lines, 4], []) };
      case 'image.crop-boxes':
        return Array.from({ length: this.lines }, (_, i) => ({
          image: { dtype: 'uint8', shape: [1, 1, 3], data: new Uint8Array([i, i, i]) } satisfies Tensor,
          box: f32([1, 4], [i, i, i + 1, i + 1]),
        }));
      case 'ppocr.recogniser-input':
        return {
          x: f32(
            [1, 3, 48, 1],
            Array.from({ length: 144 }, () => (inputs.image!.data as Uint8Array)[0]!),
          ),
        };
      case 'ocr.ctc-decode': {
        const i = (inputs.probabilities!.data as Float32Array)[0]!;
        return { text: { dtype: 'string', shape: [1], data: [`line ${i}`] }, confidence: f32([1], [i / 10]) };
      }
      case 'ocr.lines':
        return { text: inputs.text!, boxes: inputs.boxes! };
      default:
        throw new Error(`no fake for ${step.processor}`);
    }
  }

  runModel(step: StepSpec, inputs: TensorMap, signal: AbortSignal): Promise<ModelStepResult> {
    this.calls.push(step.name);
    this.signals.push(signal);
    if (this.model !== undefined) return this.model(step, inputs, signal);
    return Promise.resolve(modelAnswer(step, inputs));
  }
}

export function modelAnswer(step: StepSpec, inputs: TensorMap): ModelStepResult {
  if (step.name === 'detect') return { outputs: { 'sigmoid_0.tmp_0': f32([1, 1, 1, 1], [0.5]) } };
  const i = (inputs.x!.data as Float32Array)[0]!;
  return { outputs: { 'softmax_2.tmp_0': f32([1, 1, 1], [i]) } };
}

/** Waits until the promises pending now have had their turn. */
export const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export type OcrFile = ReturnType<typeof ocrFile>;

/** The message parsing `raw` fails with (a PipelineFileError's). */
export function errorOfRaw(raw: unknown, lookups: PipelineLookups = LOOKUPS): string {
  try {
    parsePipelineFile(raw, FILE, lookups);
  } catch (error) {
    if (error instanceof PipelineFileError) return error.message;
    throw error;
  }
  throw new Error('expected the file to be refused');
}

/** The message parsing the OCR file, as changed by `change`, fails with. */
export function errorOf(change: (file: OcrFile) => unknown, lookups: PipelineLookups = LOOKUPS): string {
  const file = ocrFile();
  change(file);
  return errorOfRaw(file, lookups);
}

/** The OCR file's step of that name. */
export const step = (file: OcrFile, name: string): Record<string, unknown> =>
  file.steps.find((s) => s.name === name)!;
