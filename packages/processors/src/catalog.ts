/**
 * What every built-in processor takes and gives, and its options: pure data, so that the API and the
 * repository reader can check a pipeline.json without loading the processors' code (sharp, the
 * kernels). The implementations are in builtin.ts, keyed by the same names; docs/pipelines.md lists
 * them for users.
 */
import type { TensorSpec } from '@inferq/protocol';
import { z } from 'zod';

export interface ProcessorDeclaration {
  name: string;
  /** One line for the docs and for error messages. */
  summary: string;
  /** Its run returns one result per item (a fan-out): later steps can run `forEach` of it. */
  fanOut: boolean;
  inputs: TensorSpec[];
  /** For a fan-out, each item's outputs. */
  outputs: TensorSpec[];
  /** Its `options`, validated when the pipeline is read (defaults filled in). */
  options: z.ZodType<Record<string, unknown>>;
}

const image = (name = 'image'): TensorSpec => ({ name, dtype: 'uint8', shape: [-1, -1, 3] });
const floats = (name: string, shape: number[]): TensorSpec => ({ name, dtype: 'float32', shape });

/** Mean and standard deviation per plane, in the tensor's plane order (BGR for PaddleOCR), applied to byte / 255. */
const normalisation = {
  mean: z.tuple([z.number(), z.number(), z.number()]).optional(),
  std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]).optional(),
};

/** A text line's input size: its height, and its width (the least, where it varies). */
const textLineSize = {
  height: z.number().int().positive().optional(),
  width: z.number().int().positive().optional(),
};

const DECLARATIONS: ProcessorDeclaration[] = [
  {
    name: 'image.decode',
    summary:
      'JPEG, PNG or WebP bytes → RGB pixels [height, width, 3] (EXIF orientation applied, alpha on white)',
    fanOut: false,
    inputs: [{ name: 'image', dtype: 'uint8', shape: [-1] }],
    outputs: [image()],
    options: z.strictObject({ maxPixels: z.number().int().positive().optional() }),
  },
  {
    name: 'image.to-tensor',
    summary:
      "pixels → a vision model's input [1, 3, H, W] (or [1, H, W, 3]): resized (stretched, fitted and padded, or filled and centre-cropped), (byte / 255 − mean) / std per channel, RGB or BGR",
    fanOut: false,
    inputs: [image()],
    outputs: [floats('x', [1, -1, -1, -1])],
    options: z.strictObject({
      width: z.number().int().positive(),
      height: z.number().int().positive(),
      fit: z.enum(['stretch', 'contain', 'cover']).optional(),
      ...normalisation,
      channelOrder: z.enum(['rgb', 'bgr']).optional(),
      layout: z.enum(['nchw', 'nhwc']).optional(),
      padValue: z.number().int().min(0).max(255).optional(),
    }),
  },
  {
    name: 'ppocr.detector-input',
    summary:
      'pixels → a DB text detector input [1, 3, H, W] (sides multiples of 32, the longer at most limitSideLen) and the scale back to the source',
    fanOut: false,
    inputs: [image()],
    outputs: [floats('x', [1, 3, -1, -1]), floats('scale', [2])],
    options: z.strictObject({
      limitSideLen: z.number().int().min(32).optional(),
      ...normalisation,
    }),
  },
  {
    name: 'ppocr.text-boxes',
    summary:
      "a DB detector's probability map → text boxes [N, 4] (x0, y0, x1, y1 in source pixels) in reading order, with their scores",
    fanOut: false,
    inputs: [floats('map', [1, 1, -1, -1]), floats('scale', [2])],
    outputs: [floats('boxes', [-1, 4]), floats('scores', [-1])],
    options: z.strictObject({
      threshold: z.number().min(0).max(1).optional(),
      boxThreshold: z.number().min(0).max(1).optional(),
      unclipRatio: z.number().positive().optional(),
      minSize: z.number().nonnegative().optional(),
      maxBoxes: z.number().int().positive().optional(),
    }),
  },
  {
    name: 'image.crop-boxes',
    summary: 'pixels and boxes [N, 4] → one item per box: its pixels (a fan-out)',
    fanOut: true,
    inputs: [image(), floats('boxes', [-1, 4])],
    outputs: [image()],
    options: z.strictObject({}),
  },
  {
    name: 'ppocr.classifier-input',
    summary: "a text line's pixels → a direction classifier input [1, 3, 48, 192]",
    fanOut: false,
    inputs: [image()],
    outputs: [floats('x', [1, 3, 48, -1])],
    options: z.strictObject(textLineSize),
  },
  {
    name: 'ppocr.orient',
    summary:
      "a text line's pixels and the classifier's [1, 2] probabilities (0°, 180°) → the line turned upright",
    fanOut: false,
    inputs: [image(), floats('probabilities', [1, 2])],
    outputs: [image(), { name: 'angle', dtype: 'int32', shape: [1] }],
    options: z.strictObject({ threshold: z.number().min(0).max(1).optional() }),
  },
  {
    name: 'ppocr.recogniser-input',
    summary:
      "a text line's pixels → a recogniser input [1, 3, 48, W]: resized to the height, padded on the right to its width rounded up to widthStep, within [width, maxWidth]",
    fanOut: false,
    inputs: [image()],
    outputs: [floats('x', [1, 3, 48, -1])],
    options: z.strictObject({
      ...textLineSize,
      maxWidth: z.number().int().positive().optional(),
      widthStep: z.number().int().positive().optional(),
    }),
  },
  {
    name: 'ctc.greedy-decode',
    summary:
      "a CTC recogniser's per-step probabilities [1, T, C] → its text [1] and confidence [1], with a dictionary file (one label per line)",
    fanOut: false,
    inputs: [floats('probabilities', [1, -1, -1])],
    outputs: [{ name: 'text', dtype: 'string', shape: [1] }, floats('confidence', [1])],
    options: z.strictObject({ dictionary: z.string().min(1) }),
  },
  {
    name: 'ocr.lines',
    summary:
      'gathered text lines, their confidences and boxes → the lines worth answering (minConfidence, not empty)',
    fanOut: false,
    inputs: [
      { name: 'text', dtype: 'string', shape: [-1] },
      floats('confidence', [-1]),
      floats('boxes', [-1, 4]),
    ],
    outputs: [
      { name: 'text', dtype: 'string', shape: [-1] },
      floats('confidence', [-1]),
      floats('boxes', [-1, 4]),
    ],
    options: z.strictObject({ minConfidence: z.number().min(0).max(1).optional() }),
  },
  {
    name: 'softmax',
    summary: 'scores [N, C] → probabilities [N, C], per row',
    fanOut: false,
    inputs: [floats('scores', [-1, -1])],
    outputs: [floats('probabilities', [-1, -1])],
    options: z.strictObject({}),
  },
  {
    name: 'top-k',
    summary:
      'probabilities [N, C] → the k best per row: their labels [N, k] (from a labels file) and scores [N, k]',
    fanOut: false,
    inputs: [floats('probabilities', [-1, -1])],
    outputs: [{ name: 'labels', dtype: 'string', shape: [-1, -1] }, floats('scores', [-1, -1])],
    options: z.strictObject({ k: z.number().int().positive(), labels: z.string().min(1) }),
  },
];

export const BUILTIN_PROCESSORS: ReadonlyMap<string, ProcessorDeclaration> = new Map(
  DECLARATIONS.map((declaration) => [declaration.name, declaration]),
);
