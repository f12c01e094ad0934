// The cases of ONNX's node tests as Debian's libonnx-testdata installs them:
// `<root>/test_<name>/model.onnx` and `<root>/test_<name>/test_data_set_<k>/{input,output}_<n>.pb`.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** Where Debian's libonnx-testdata puts the node tests (one single-operator model per case). */
export const DEFAULT_NODE_TESTS = '/usr/share/libonnx-testdata/data/node';

/** What a graph input or output holds. */
export type ValueKind = 'tensor' | 'sequence' | 'map' | 'optional' | 'sparse tensor' | 'unknown';

export interface GraphValue {
  name: string;
  kind: ValueKind;
  /** ONNX element type of a tensor (0 when not a tensor). */
  elemType: number;
}

export interface DataSet {
  /** `test_data_set_<k>` */
  name: string;
  /** `input_<n>.pb` in n order: the n-th graph input (initializers excluded). */
  inputs: string[];
  /** `output_<n>.pb` in n order: the n-th graph output. */
  outputs: string[];
}

export interface ConformanceCase {
  /** The case's folder name, e.g. `test_abs`; also its model name in the repository. */
  name: string;
  modelPath: string;
  /** Graph inputs a caller feeds (those that are not initializers), in order. */
  inputs: GraphValue[];
  outputs: GraphValue[];
  dataSets: DataSet[];
}

function kindOf(type: onnxProto.onnx.ITypeProto | null | undefined): ValueKind {
  if (type?.tensorType) return 'tensor';
  if (type?.sequenceType) return 'sequence';
  if (type?.mapType) return 'map';
  if (type?.optionalType) return 'optional';
  if (type?.sparseTensorType) return 'sparse tensor';
  return 'unknown';
}

function graphValue(value: onnxProto.onnx.IValueInfoProto): GraphValue {
  return {
    name: value.name ?? '',
    kind: kindOf(value.type),
    elemType: value.type?.tensorType?.elemType ?? 0,
  };
}

function numbered(dir: string, prefix: string): string[] {
  const pattern = new RegExp(`^${prefix}_(\\d+)\\.pb$`);
  return readdirSync(dir)
    .map((file) => ({ file, match: pattern.exec(file) }))
    .filter((entry): entry is { file: string; match: RegExpExecArray } => entry.match !== null)
    .sort((a, b) => Number(a.match[1]) - Number(b.match[1]))
    .map((entry) => join(dir, entry.file));
}

/** Reads one case folder. */
export function readCase(dir: string, name: string): ConformanceCase {
  const modelPath = join(dir, 'model.onnx');
  const model = onnx.ModelProto.decode(readFileSync(modelPath));
  const graph = model.graph;
  const initialized = new Set((graph?.initializer ?? []).map((tensor) => tensor.name));
  const dataSets = readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && /^test_data_set_\d+$/.test(entry.name))
    .map((entry) => entry.name)
    .sort((a, b) => Number(a.slice('test_data_set_'.length)) - Number(b.slice('test_data_set_'.length)))
    .map((setName) => {
      const setDir = join(dir, setName);
      return { name: setName, inputs: numbered(setDir, 'input'), outputs: numbered(setDir, 'output') };
    });
  return {
    name,
    modelPath,
    inputs: (graph?.input ?? []).filter((value) => !initialized.has(value.name ?? '')).map(graphValue),
    outputs: (graph?.output ?? []).map(graphValue),
    dataSets,
  };
}

/** Every case under `root` (folders holding a model.onnx), sorted by name. */
export function listCases(root: string = DEFAULT_NODE_TESTS): ConformanceCase[] {
  if (!existsSync(root)) {
    throw new Error(
      `${root} is missing: install Debian's libonnx-testdata (apt-get install libonnx-testdata)`,
    );
  }
  return readdirSync(root, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(root, entry.name, 'model.onnx')))
    .map((entry) => entry.name)
    .sort()
    .map((name) => readCase(join(root, name), name));
}
