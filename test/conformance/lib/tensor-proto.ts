// ONNX TensorProto files (the `input_N.pb` / `output_N.pb` of ONNX's node tests) as inferq tensors,
// read with onnx-proto: element bytes from `raw_data` (little-endian) or from the typed repeated
// fields, exactly as onnx.numpy_helper.to_array reads them.
import { readFileSync } from 'node:fs';
import type { DType, Tensor, TensorData } from '@inferq/protocol';
import { DTYPE_OF_ONNX_ELEMENT } from '@inferq/repository';
import onnxProto from 'onnx-proto';
import { typedArrayOf } from './typed-array.ts';

const { onnx } = onnxProto;
const ElementType = onnx.TensorProto.DataType;

/** ONNX element type -> inferq dtype, for the types inferq carries (the repository's own table). */
export const DTYPE_OF_ELEMENT = DTYPE_OF_ONNX_ELEMENT;

/** The name ONNX gives an element type (`BFLOAT16`, `COMPLEX64`…), or its number. */
export function elementTypeName(elemType: number): string {
  return (ElementType as unknown as Record<number, string>)[elemType] ?? `element type ${elemType}`;
}

/** A file that holds something other than a tensor of a dtype inferq carries. */
export class UnsupportedTensorError extends Error {
  override readonly name = 'UnsupportedTensorError';
}

type LongLike = number | { toString(): string };

function toNumber(value: LongLike): number {
  return typeof value === 'number' ? value : Number(value.toString());
}

function toBigInt(value: LongLike): bigint {
  return BigInt(typeof value === 'number' ? value : value.toString());
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A fresh, aligned typed array of `dtype` over a copy of `raw` (little-endian element bytes). */
function fromRaw(dtype: Exclude<DType, 'string'>, raw: Uint8Array, count: number): TensorData {
  const data = typedArrayOf(dtype, raw);
  if (data.length !== count) {
    throw new Error(`raw_data holds ${data.length} ${dtype} elements, the shape needs ${count}`);
  }
  return data;
}

/** The typed repeated field that holds `dtype` when raw_data is empty (onnx.proto3's comments). */
function fromFields(dtype: DType, proto: onnxProto.onnx.TensorProto, count: number): TensorData {
  const check = (length: number, field: string): void => {
    if (length !== count) throw new Error(`${field} holds ${length} elements, the shape needs ${count}`);
  };
  switch (dtype) {
    case 'string': {
      check(proto.stringData.length, 'string_data');
      return proto.stringData.map((bytes) => utf8.decode(bytes));
    }
    case 'float32':
      check(proto.floatData.length, 'float_data');
      return Float32Array.from(proto.floatData);
    case 'float64':
      check(proto.doubleData.length, 'double_data');
      return Float64Array.from(proto.doubleData);
    case 'int64':
      check(proto.int64Data.length, 'int64_data');
      return BigInt64Array.from(proto.int64Data, toBigInt);
    case 'uint32':
      check(proto.uint64Data.length, 'uint64_data');
      return Uint32Array.from(proto.uint64Data, toNumber);
    case 'uint64':
      check(proto.uint64Data.length, 'uint64_data');
      return BigUint64Array.from(proto.uint64Data, toBigInt);
    case 'float16': // int32_data holds the raw bits
    case 'uint16':
      check(proto.int32Data.length, 'int32_data');
      return Uint16Array.from(proto.int32Data);
    case 'int8':
      check(proto.int32Data.length, 'int32_data');
      return Int8Array.from(proto.int32Data);
    case 'int16':
      check(proto.int32Data.length, 'int32_data');
      return Int16Array.from(proto.int32Data);
    case 'int32':
      check(proto.int32Data.length, 'int32_data');
      return Int32Array.from(proto.int32Data);
    case 'uint8':
    case 'bool':
      check(proto.int32Data.length, 'int32_data');
      return Uint8Array.from(proto.int32Data);
  }
}

/** Decodes a serialized TensorProto into an inferq tensor. */
export function decodeTensorProto(bytes: Uint8Array): Tensor {
  const proto = onnx.TensorProto.decode(bytes);
  const dtype = DTYPE_OF_ELEMENT.get(proto.dataType);
  if (dtype === undefined) {
    throw new UnsupportedTensorError(`a tensor of element type ${elementTypeName(proto.dataType)}`);
  }
  if (proto.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    throw new UnsupportedTensorError('a tensor with external data');
  }
  const shape = proto.dims.map(toNumber);
  const count = shape.reduce((product, dim) => product * dim, 1);
  const data =
    proto.rawData.byteLength > 0 && dtype !== 'string'
      ? fromRaw(dtype, proto.rawData, count)
      : fromFields(dtype, proto, count);
  return { dtype, shape, data };
}

/** Reads a `.pb` file holding one TensorProto. */
export function readTensorProto(path: string): Tensor {
  return decodeTensorProto(readFileSync(path));
}
