// Small ONNX models written with onnx-proto, whose outputs tests can compute exactly.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { DType, NumericDType } from '@inferq/protocol';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

const ELEMENT_TYPE: Readonly<Record<DType, number>> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float64: onnx.TensorProto.DataType.DOUBLE,
  float16: onnx.TensorProto.DataType.FLOAT16,
  int8: onnx.TensorProto.DataType.INT8,
  int16: onnx.TensorProto.DataType.INT16,
  int32: onnx.TensorProto.DataType.INT32,
  int64: onnx.TensorProto.DataType.INT64,
  uint8: onnx.TensorProto.DataType.UINT8,
  uint16: onnx.TensorProto.DataType.UINT16,
  uint32: onnx.TensorProto.DataType.UINT32,
  uint64: onnx.TensorProto.DataType.UINT64,
  bool: onnx.TensorProto.DataType.BOOL,
  string: onnx.TensorProto.DataType.STRING,
};

/** A graph input or output; a string dim is symbolic (dynamic). */
export interface ValueSpec {
  name: string;
  dtype: DType;
  shape: (number | string)[];
}

export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
}

/** A float32 constant baked into the graph. */
export interface FloatInitializer {
  name: string;
  dims: number[];
  values: number[];
}

export interface GraphSpec {
  inputs: ValueSpec[];
  outputs: ValueSpec[];
  nodes: NodeSpec[];
  initializers?: FloatInitializer[];
}

/** Opset 13 supports every dtype in Identity, Add and Mul, and every onnxruntime since 1.7 runs it. */
const OPSET = 13;
const IR_VERSION = 7;

function valueInfo(spec: ValueSpec): onnxProto.onnx.IValueInfoProto {
  return {
    name: spec.name,
    type: {
      tensorType: {
        elemType: ELEMENT_TYPE[spec.dtype],
        shape: {
          dim: spec.shape.map((dim) => (typeof dim === 'string' ? { dimParam: dim } : { dimValue: dim })),
        },
      },
    },
  };
}

/** Serialises a graph as an ONNX model; the bytes are deterministic for the same spec. */
export function encodeModel(graph: GraphSpec, name = 'test'): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: 'inferq-tests',
    opsetImport: [{ domain: '', version: OPSET }],
    graph: {
      name,
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
      node: graph.nodes.map((node, index) => ({
        name: `${node.op.toLowerCase()}_${index}`,
        opType: node.op,
        input: node.inputs,
        output: node.outputs,
      })),
      initializer: (graph.initializers ?? []).map((init) => ({
        name: init.name,
        dims: init.dims,
        dataType: onnx.TensorProto.DataType.FLOAT,
        floatData: init.values,
      })),
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

export function writeModel(path: string, graph: GraphSpec, name?: string): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, encodeModel(graph, name));
  return path;
}

/** x float32 [N,4] -> y = x * scale + bias (two float32 operations, so exact results are predictable). */
export function writeAffineModel(path: string, { scale, bias }: { scale: number; bias: number }): string {
  return writeModel(
    path,
    {
      inputs: [{ name: 'x', dtype: 'float32', shape: ['N', 4] }],
      outputs: [{ name: 'y', dtype: 'float32', shape: ['N', 4] }],
      nodes: [
        { op: 'Mul', inputs: ['x', 'scale'], outputs: ['scaled'] },
        { op: 'Add', inputs: ['scaled', 'bias'], outputs: ['y'] },
      ],
      initializers: [
        { name: 'scale', dims: [], values: [scale] },
        { name: 'bias', dims: [], values: [bias] },
      ],
    },
    'affine',
  );
}

/** x <dtype> [N, ...innerShape] -> y = x, for any numeric dtype, bool or string. */
export function writeIdentityModel(
  path: string,
  dtype: NumericDType | 'string',
  innerShape: number[],
): string {
  return writeModel(
    path,
    {
      inputs: [{ name: 'x', dtype, shape: ['N', ...innerShape] }],
      outputs: [{ name: 'y', dtype, shape: ['N', ...innerShape] }],
      nodes: [{ op: 'Identity', inputs: ['x'], outputs: ['y'] }],
    },
    `identity_${dtype}`,
  );
}

/** a, b float32 [N,3] -> sum = a + b, prod = a * b. */
export function writeTwoInputModel(path: string): string {
  return writeModel(
    path,
    {
      inputs: [
        { name: 'a', dtype: 'float32', shape: ['N', 3] },
        { name: 'b', dtype: 'float32', shape: ['N', 3] },
      ],
      outputs: [
        { name: 'sum', dtype: 'float32', shape: ['N', 3] },
        { name: 'prod', dtype: 'float32', shape: ['N', 3] },
      ],
      nodes: [
        { op: 'Add', inputs: ['a', 'b'], outputs: ['sum'] },
        { op: 'Mul', inputs: ['a', 'b'], outputs: ['prod'] },
      ],
    },
    'two_input',
  );
}

/** x float32 [1,4] -> y = x: no dynamic axis, so the model cannot batch (maxBatchSize infers to 0). */
export function writeFixedBatchModel(path: string): string {
  return writeModel(
    path,
    {
      inputs: [{ name: 'x', dtype: 'float32', shape: [1, 4] }],
      outputs: [{ name: 'y', dtype: 'float32', shape: [1, 4] }],
      nodes: [{ op: 'Identity', inputs: ['x'], outputs: ['y'] }],
    },
    'fixed_batch',
  );
}
