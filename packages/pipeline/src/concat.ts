/**
 * Gathering: the per-item tensors of a fan-out concatenated along axis 0, in item order (typed arrays
 * copied with `TypedArray.set`, one call per item), and the empty tensor that stands for no item.
 */
import {
  type DType,
  describeDataMismatch,
  elementCount,
  expectedDataType,
  type Tensor,
  type TensorData,
  type TensorSpec,
} from '@inferq/protocol';

type NumericData = Exclude<TensorData, string[]>;

/** A zeroed `TensorData` of `length` elements, of the kind `dtype` is carried in. */
export function allocateData(dtype: DType, length: number): TensorData {
  if (dtype === 'string') return new Array<string>(length).fill('');
  const DataType = expectedDataType(dtype);
  return new DataType(length);
}

const formatShape = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

/**
 * Concatenates `tensors` (at least one) along axis 0. They must agree on dtype, rank and every
 * dimension after the first, and each must hold the data its shape and dtype say; throws an Error
 * saying which item disagrees otherwise. A single tensor is returned as is.
 */
export function concatAxis0(tensors: readonly Tensor[]): Tensor {
  const first = tensors[0];
  if (first === undefined) throw new RangeError('nothing to concatenate');
  if (first.shape.length === 0) {
    throw new Error(
      'item 0 is a scalar (shape []): gathering concatenates along axis 0, so items need rank ≥ 1',
    );
  }
  let rows = 0;
  let length = 0;
  tensors.forEach((tensor, item) => {
    if (tensor.dtype !== first.dtype) {
      throw new Error(`item ${item} is ${tensor.dtype}, but item 0 is ${first.dtype}`);
    }
    const agrees =
      tensor.shape.length === first.shape.length &&
      tensor.shape.every((dim, axis) => axis === 0 || dim === first.shape[axis]);
    if (!agrees) {
      throw new Error(
        `item ${item} has shape ${formatShape(tensor.shape)}, but item 0 has ${formatShape(first.shape)}: all dimensions but the first must agree`,
      );
    }
    const mismatch = describeDataMismatch(tensor.dtype, tensor.data, elementCount(tensor.shape) ?? -1);
    if (mismatch !== undefined)
      throw new Error(`item ${item} (shape ${formatShape(tensor.shape)}): ${mismatch}`);
    rows += tensor.shape[0]!;
    length += tensor.data.length;
  });
  if (tensors.length === 1) return first;

  const shape = [rows, ...first.shape.slice(1)];
  if (first.dtype === 'string') {
    return { dtype: first.dtype, shape, data: tensors.flatMap((tensor) => tensor.data as string[]) };
  }
  // Same dtype, so the same typed array class throughout: `set` copies each item's elements in one call.
  const data = allocateData(first.dtype, length) as NumericData;
  const target = data as unknown as { set(source: NumericData, offset: number): void };
  let offset = 0;
  for (const tensor of tensors) {
    target.set(tensor.data as NumericData, offset);
    offset += tensor.data.length;
  }
  return { dtype: first.dtype, shape, data };
}

/**
 * What gathering no item gives for an output declared as `spec`: axis 0 is 0, the other dimensions
 * are the declared ones (a dynamic one is 0). A declared scalar gives shape [0].
 */
export function emptyGathered(spec: TensorSpec): Tensor {
  const trailing = spec.shape.slice(1).map((dim) => (dim < 0 ? 0 : dim));
  return { dtype: spec.dtype, shape: [0, ...trailing], data: allocateData(spec.dtype, 0) };
}
