import { readFile } from 'node:fs/promises';
import type { DType, ModelSignature, TensorSpec } from '@inferq/protocol';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
const ElementType = onnx.TensorProto.DataType;

/** ONNX element types that inferq carries; any other (bfloat16, complex, float8…) is not served. */
export const DTYPE_OF_ONNX_ELEMENT: ReadonlyMap<number, DType> = new Map([
  [ElementType.FLOAT, 'float32'],
  [ElementType.DOUBLE, 'float64'],
  [ElementType.FLOAT16, 'float16'],
  [ElementType.INT8, 'int8'],
  [ElementType.INT16, 'int16'],
  [ElementType.INT32, 'int32'],
  [ElementType.INT64, 'int64'],
  [ElementType.UINT8, 'uint8'],
  [ElementType.UINT16, 'uint16'],
  [ElementType.UINT32, 'uint32'],
  [ElementType.UINT64, 'uint64'],
  [ElementType.BOOL, 'bool'],
  [ElementType.STRING, 'string'],
] as [number, DType][]);

/** A model file whose declared inputs or outputs inferq cannot serve; the message says why. */
export class SignatureError extends Error {
  override readonly name = 'SignatureError';
}

/** Element types newer than onnx-proto's enum (onnx.proto3 TensorProto.DataType). */
const NEWER_ELEMENT_TYPES: ReadonlyMap<number, string> = new Map([
  [17, 'FLOAT8E4M3FN'],
  [18, 'FLOAT8E4M3FNUZ'],
  [19, 'FLOAT8E5M2'],
  [20, 'FLOAT8E5M2FNUZ'],
  [21, 'UINT4'],
  [22, 'INT4'],
  [23, 'FLOAT4E2M1'],
  [24, 'FLOAT8E8M0'],
]);

function elementTypeName(elemType: number): string {
  return (
    (ElementType as unknown as Record<number, string>)[elemType] ??
    NEWER_ELEMENT_TYPES.get(elemType) ??
    `element type ${elemType}`
  );
}

function kindOf(type: onnxProto.onnx.ITypeProto | null | undefined): string {
  if (type?.sequenceType) return 'a sequence';
  if (type?.mapType) return 'a map';
  if (type?.optionalType) return 'an optional';
  if (type?.sparseTensorType) return 'a sparse tensor';
  return 'not a tensor';
}

function toSpec(value: onnxProto.onnx.IValueInfoProto, modelPath: string): TensorSpec {
  const name = value.name ?? '';
  const tensorType = value.type?.tensorType;
  if (!tensorType) {
    throw new SignatureError(
      `${modelPath}: '${name}' is ${kindOf(value.type)}; only tensor inputs and outputs are served`,
    );
  }
  const elemType = tensorType.elemType ?? 0;
  const dtype = DTYPE_OF_ONNX_ELEMENT.get(elemType);
  if (dtype === undefined) {
    throw new SignatureError(
      `${modelPath}: '${name}' has element type ${elementTypeName(elemType)}, which is not served`,
    );
  }
  // No shape at all is an unknown rank, which a signature cannot say: `[]` means a scalar, so every
  // request with a tensor would be refused (an input), or a client told a scalar comes back (an
  // output). The model is refused instead, saying how to give it shapes.
  if (!tensorType.shape) {
    throw new SignatureError(
      `${modelPath}: '${name}' has no shape (its rank is unknown), which inferq cannot check requests against; ` +
        'give the graph input and output shapes (onnx.shape_inference.infer_shapes, or the exporter)',
    );
  }
  const dims = tensorType.shape.dim ?? [];
  const shape = dims.map((dim) => {
    const value = dim.dimValue;
    if (value === null || value === undefined || dim.dimParam) return -1;
    const size = Number(value);
    return Number.isSafeInteger(size) && size >= 0 ? size : -1;
  });
  return { name, dtype, shape };
}

/**
 * Names, dtypes and shapes (-1 = dynamic) of a model's inputs and outputs, read from the ONNX file's
 * graph without onnxruntime: whoever only needs the signature (the API) opens no session and holds no
 * weights. Graph inputs that are also initializers have defaults inside the model, so they are not
 * inputs a client sends (onnxruntime lists them apart, as overridable initializers).
 */
export async function readModelSignature(modelPath: string): Promise<ModelSignature> {
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(await readFile(modelPath));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== undefined) throw error;
    throw new SignatureError(`${modelPath}: not an ONNX model (${(error as Error).message})`);
  }
  const graph = model.graph;
  if (!graph) throw new SignatureError(`${modelPath}: the ONNX model has no graph`);
  const initialized = new Set((graph.initializer ?? []).map((tensor) => tensor.name));
  for (const sparse of graph.sparseInitializer ?? []) initialized.add(sparse.values?.name ?? '');
  return {
    inputs: (graph.input ?? [])
      .filter((value) => !initialized.has(value.name ?? ''))
      .map((value) => toSpec(value, modelPath)),
    outputs: (graph.output ?? []).map((value) => toSpec(value, modelPath)),
  };
}
