/**
 * The built-in processors' code, keyed by the names catalog.ts declares: each takes named tensors
 * and its (already validated) options and gives named tensors, or one map per item for a fan-out.
 * The worker runs them in its processor threads (docs/pipelines.md).
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import type { Tensor, TensorMap } from '@inferq/protocol';
import { ctcGreedyDecode, ctcLabels } from './ctc.ts';
import {
  type ChannelValues,
  cropRegion,
  type DecodedImage,
  decodeImage,
  detectorInput,
  rotate180,
  textLineInput,
} from './image.ts';
import { type ImageTensorOptions, imageTensor as toTensor } from './image-tensor.ts';
import { softmaxRows, topK } from './softmax.ts';
import { DB_DEFAULTS, textBoxes } from './text-boxes.ts';

/** Where a processor runs: relative file options (a dictionary, labels) are read from `dir`. */
export interface ProcessorContext {
  /** The pipeline version's folder. */
  dir: string;
}

export type ProcessorResult = TensorMap | TensorMap[];
export type ProcessorRun = (
  inputs: TensorMap,
  options: Record<string, unknown>,
  context: ProcessorContext,
) => Promise<ProcessorResult> | ProcessorResult;

/** Pixels of a decoded image: an image.decode output that cannot hold more than 40 megapixels by default. */
export const DEFAULT_MAX_PIXELS = 40_000_000;
/** PaddleOCR's det NormalizeImage: ImageNet's mean and std, applied to BGR planes in this order. */
const DET_MEAN: ChannelValues = [0.485, 0.456, 0.406];
const DET_STD: ChannelValues = [0.229, 0.224, 0.225];

const imageOf = (tensor: Tensor | undefined, name = 'image'): DecodedImage => {
  if (tensor === undefined || tensor.dtype !== 'uint8' || tensor.shape.length !== 3 || tensor.shape[2] !== 3)
    throw new TypeError(`'${name}' must be uint8 pixels [height, width, 3]`);
  return { height: tensor.shape[0]!, width: tensor.shape[1]!, data: tensor.data as Uint8Array };
};
const imageTensor = (image: DecodedImage): Tensor => ({
  dtype: 'uint8',
  shape: [image.height, image.width, 3],
  data: image.data,
});
const floats = (data: Float32Array, shape: number[]): Tensor => ({ dtype: 'float32', shape, data });
const floatsOf = (tensor: Tensor | undefined, name: string): Float32Array => {
  if (tensor === undefined || tensor.dtype !== 'float32') throw new TypeError(`'${name}' must be float32`);
  return tensor.data as Float32Array;
};
const number = (value: unknown, fallback: number): number => (typeof value === 'number' ? value : fallback);

/** A text file an option names, relative to the pipeline's folder and inside it; read once per path. */
const files = new Map<string, Promise<string>>();
function readOptionFile(context: ProcessorContext, name: unknown): Promise<string> {
  const path = join(context.dir, String(name));
  const inside = relative(context.dir, path);
  if (isAbsolute(String(name)) || inside.startsWith('..')) {
    return Promise.reject(new Error(`the file '${String(name)}' is outside the pipeline's folder`));
  }
  let text = files.get(path);
  if (text === undefined) {
    text = readFile(path, 'utf8');
    files.set(path, text);
    text.catch(() => files.delete(path));
  }
  return text;
}

const labelsOf = new Map<string, string[]>();

export const BUILTIN_RUNS: ReadonlyMap<string, ProcessorRun> = new Map<string, ProcessorRun>([
  [
    'image.decode',
    async (inputs, options) => {
      const bytes = inputs.image;
      if (bytes === undefined || bytes.dtype !== 'uint8') throw new TypeError("'image' must be uint8 bytes");
      const image = await decodeImage(bytes.data as Uint8Array, {
        maxPixels: number(options.maxPixels, DEFAULT_MAX_PIXELS),
      });
      return { image: imageTensor(image) };
    },
  ],
  [
    'image.to-tensor',
    (inputs, options) => {
      const { data, shape } = toTensor(imageOf(inputs.image), options as unknown as ImageTensorOptions);
      return { x: floats(data, [...shape]) };
    },
  ],
  [
    'ppocr.detector-input',
    (inputs, options) => {
      const image = imageOf(inputs.image);
      const input = detectorInput(image, {
        limitSideLen: number(options.limitSideLen, 960),
        mean: (options.mean as ChannelValues | undefined) ?? DET_MEAN,
        std: (options.std as ChannelValues | undefined) ?? DET_STD,
      });
      return {
        x: floats(input.tensor, [...input.dims]),
        scale: floats(new Float32Array([image.width, image.height]), [2]),
      };
    },
  ],
  [
    'ppocr.text-boxes',
    (inputs, options) => {
      const map = inputs.map;
      const data = floatsOf(map, 'map');
      const [, , height = 0, width = 0] = map?.shape ?? [];
      const [sourceWidth = width, sourceHeight = height] = floatsOf(inputs.scale, 'scale');
      let boxes = textBoxes(data, width, height, {
        threshold: number(options.threshold, DB_DEFAULTS.threshold),
        boxThreshold: number(options.boxThreshold, DB_DEFAULTS.boxThreshold),
        unclipRatio: number(options.unclipRatio, DB_DEFAULTS.unclipRatio),
        minSide: number(options.minSize, DB_DEFAULTS.minSide),
        sourceWidth,
        sourceHeight,
      });
      if (typeof options.maxBoxes === 'number') boxes = boxes.slice(0, options.maxBoxes);
      return {
        boxes: floats(new Float32Array(boxes.flatMap((b) => [b.x0, b.y0, b.x1, b.y1])), [boxes.length, 4]),
        scores: floats(new Float32Array(boxes.map((b) => b.score)), [boxes.length]),
      };
    },
  ],
  [
    'image.crop-boxes',
    (inputs) => {
      const image = imageOf(inputs.image);
      const boxes = floatsOf(inputs.boxes, 'boxes');
      const items: TensorMap[] = [];
      for (let i = 0; i + 3 < boxes.length; i += 4) {
        const box = { x0: boxes[i]!, y0: boxes[i + 1]!, x1: boxes[i + 2]!, y1: boxes[i + 3]! };
        items.push({ image: imageTensor(cropRegion(image, box)) });
      }
      return items;
    },
  ],
  [
    'ppocr.classifier-input',
    (inputs, options) => {
      const width = number(options.width, 192);
      const input = textLineInput([imageOf(inputs.image)], {
        height: number(options.height, 48),
        minWidth: width,
        maxWidth: width,
      });
      return { x: floats(input.tensor, [...input.dims]) };
    },
  ],
  [
    'ppocr.orient',
    (inputs, options) => {
      const image = imageOf(inputs.image);
      const [best] = topK(floatsOf(inputs.probabilities, 'probabilities'), 1);
      const turn = best !== undefined && best.index === 1 && best.score > number(options.threshold, 0.9);
      return {
        image: imageTensor(turn ? rotate180(image) : image),
        angle: { dtype: 'int32', shape: [1], data: new Int32Array([turn ? 180 : 0]) },
      };
    },
  ],
  [
    'ppocr.recogniser-input',
    (inputs, options) => {
      // The line's own width, rounded up to a step: lines of similar length share one input shape (and
      // so the recogniser's batches, across requests), and a line's input, hence its result, never
      // depends on its companions. PP-OCR rec's training shape, 48 × 320, is the least.
      const image = imageOf(inputs.image);
      const height = number(options.height, 48);
      const step = number(options.widthStep, 64);
      const scaled = Math.ceil((height * image.width) / Math.max(1, image.height));
      const width = Math.min(
        number(options.maxWidth, 1600),
        Math.max(number(options.width, 320), Math.ceil(scaled / step) * step),
      );
      const input = textLineInput([image], { height, minWidth: width, maxWidth: width });
      return { x: floats(input.tensor, [...input.dims]) };
    },
  ],
  [
    'ctc.greedy-decode',
    async (inputs, options, context) => {
      const path = join(context.dir, String(options.dictionary));
      let labels = labelsOf.get(path);
      if (labels === undefined) {
        labels = ctcLabels(await readOptionFile(context, options.dictionary), { space: true });
        labelsOf.set(path, labels);
      }
      const probabilities = inputs.probabilities;
      const [, steps = 0, classes = 0] = probabilities?.shape ?? [];
      if (classes !== labels.length) {
        throw new RangeError(
          `the recogniser gives ${classes} classes, but the dictionary makes ${labels.length} labels (the blank, its lines and the space)`,
        );
      }
      const decoded = ctcGreedyDecode(floatsOf(probabilities, 'probabilities'), steps, labels);
      return {
        text: { dtype: 'string', shape: [1], data: [decoded.text] },
        confidence: floats(new Float32Array([decoded.confidence]), [1]),
      };
    },
  ],
  [
    'ocr.lines',
    (inputs, options) => {
      const text = inputs.text?.data as string[] | undefined;
      const confidence = floatsOf(inputs.confidence, 'confidence');
      const boxes = floatsOf(inputs.boxes, 'boxes');
      if (text === undefined || text.length !== confidence.length || boxes.length !== text.length * 4) {
        throw new RangeError('text, confidence and boxes must hold one entry per line');
      }
      const minConfidence = number(options.minConfidence, 0.5);
      const kept = text.flatMap((line, i) =>
        line.trim() !== '' && confidence[i]! >= minConfidence ? [i] : [],
      );
      return {
        text: { dtype: 'string', shape: [kept.length], data: kept.map((i) => text[i]!) },
        confidence: floats(new Float32Array(kept.map((i) => confidence[i]!)), [kept.length]),
        boxes: floats(new Float32Array(kept.flatMap((i) => [...boxes.subarray(i * 4, i * 4 + 4)])), [
          kept.length,
          4,
        ]),
      };
    },
  ],
  [
    'softmax',
    (inputs) => {
      const scores = inputs.scores;
      const width = scores?.shape[1] ?? 0;
      return {
        probabilities: floats(softmaxRows(floatsOf(scores, 'scores'), width), [...(scores?.shape ?? [])]),
      };
    },
  ],
  [
    'top-k',
    async (inputs, options, context) => {
      const probabilities = inputs.probabilities;
      const [rows = 0, width = 0] = probabilities?.shape ?? [];
      const labels = (await readOptionFile(context, options.labels)).split(/\r?\n/).filter((l) => l !== '');
      if (labels.length !== width) {
        throw new RangeError(`the labels file has ${labels.length} labels for ${width} classes`);
      }
      const k = Math.min(number(options.k, 1), width);
      const data = floatsOf(probabilities, 'probabilities');
      const names: string[] = [];
      const scores = new Float32Array(rows * k);
      for (let row = 0; row < rows; row++) {
        topK(data.subarray(row * width, (row + 1) * width), k, labels).forEach((ranked, j) => {
          names.push(ranked.label ?? '');
          scores[row * k + j] = ranked.score;
        });
      }
      return {
        labels: { dtype: 'string', shape: [rows, k], data: names },
        scores: floats(scores, [rows, k]),
      };
    },
  ],
]);
