import type { BatchShape, Tensor, TensorData, TensorMap } from '@inferq/protocol';
import { type CropRule, croppedSize, type PadSpec } from '@inferq/repository';
import { allocate, elementsOf, elementValue, isNumericData } from './dtypes.ts';

/**
 * Buffers allocated here and referenced by nothing else: a session may transfer (detach) them to its
 * thread instead of copying. Request tensors are views over payloads the caller may still need.
 */
const exclusivelyOwned = new WeakSet<ArrayBufferLike>();

export function isExclusivelyOwned(data: TensorData): boolean {
  return (
    isNumericData(data) &&
    exclusivelyOwned.has(data.buffer) &&
    data.byteOffset === 0 &&
    data.byteLength === data.buffer.byteLength
  );
}

/** Allocates tensor data that only its receiver references (see isExclusivelyOwned). */
export function allocateOwned(dtype: Tensor['dtype'], length: number): TensorData {
  const data = allocate(dtype, length);
  if (isNumericData(data)) exclusivelyOwned.add(data.buffer);
  return data;
}

/** Rows a request contributes to a batch: the first axis of its inputs. */
export function batchRows(inputs: TensorMap): number {
  let rows: number | undefined;
  for (const [name, tensor] of Object.entries(inputs)) {
    const first = tensor.shape[0];
    if (first === undefined) throw new Error(`input '${name}' is a scalar: it has no batch axis`);
    if (rows !== undefined && first !== rows) {
      throw new Error(`inputs disagree on the batch axis: '${name}' has ${first} rows, others ${rows}`);
    }
    rows = first;
  }
  if (rows === undefined) throw new Error('a request without inputs has no rows');
  return rows;
}

/**
 * Requests that may share a batch have the same key: the same dims after the batch axis on every input
 * (names and dtypes are the signature's, checked by the API). A padded axis does not count: its size is
 * evened out when stacking and cropped back from the outputs. `inputNames` are the signature's inputs,
 * in the order of `shape.dims`.
 */
export function batchGroupKey(
  shape: BatchShape,
  inputNames: readonly string[],
  pad: Readonly<Record<string, PadSpec>> = {},
): string {
  return shape.dims
    .map((dims, index) => {
      const paddedAxis = pad[inputNames[index] ?? '']?.axis;
      return dims.map((dim, i) => (i + 1 === paddedAxis ? '*' : dim)).join(',');
    })
    .join(';');
}

function describe(tensor: Tensor): string {
  return `${tensor.dtype}[${tensor.shape.join(', ')}]`;
}

function stackOne(name: string, tensors: Tensor[], pad: PadSpec | undefined): Tensor {
  const first = tensors[0]!;
  const rank = first.shape.length;
  if (rank === 0) throw new Error(`input '${name}' is a scalar: it has no batch axis to stack`);
  const innerShape = first.shape.slice(1);
  if (pad !== undefined) {
    if (pad.axis < 1 || pad.axis >= rank)
      throw new Error(`input '${name}': pad axis ${pad.axis} is out of range`);
    innerShape[pad.axis - 1] = Math.max(...tensors.map((tensor) => tensor.shape[pad.axis] ?? 0));
  }
  let totalRows = 0;
  for (const tensor of tensors) {
    const sameInner =
      tensor.dtype === first.dtype &&
      tensor.shape.length === rank &&
      tensor.shape.every((dim, axis) => axis === 0 || axis === pad?.axis || dim === innerShape[axis - 1]);
    if (!sameInner) {
      throw new Error(`input '${name}': cannot stack ${describe(tensor)} with ${describe(first)}`);
    }
    if (tensor.data.length !== elementsOf(tensor.shape)) {
      throw new Error(`input '${name}': ${describe(tensor)} holds ${tensor.data.length} elements`);
    }
    totalRows += tensor.shape[0]!;
  }

  const shape = [totalRows, ...innerShape];
  const data = allocateOwned(first.dtype, elementsOf(shape));
  if (pad === undefined || tensors.every((tensor) => tensor.shape[pad.axis] === innerShape[pad.axis - 1])) {
    copyContiguous(data, tensors);
  } else {
    copyPadded(data, tensors, shape, pad, first.dtype);
  }
  return { dtype: first.dtype, shape, data };
}

function copyContiguous(target: TensorData, tensors: Tensor[]): void {
  let offset = 0;
  for (const { data } of tensors) {
    if (Array.isArray(target)) {
      for (let i = 0; i < data.length; i++) target[offset + i] = (data as string[])[i]!;
    } else {
      // Same dtype was checked, so the typed arrays are of the same kind.
      (target as Uint8Array).set(data as Uint8Array, offset);
    }
    offset += data.length;
  }
}

/**
 * Each source is a run of `outer` blocks of `axisSize * inner` elements; in the target the blocks are
 * `paddedSize * inner` long and their tails hold the pad value.
 */
function copyPadded(
  target: TensorData,
  tensors: Tensor[],
  shape: number[],
  pad: PadSpec,
  dtype: Tensor['dtype'],
): void {
  if (dtype === 'string' || !isNumericData(target)) throw new Error('string inputs cannot be padded');
  (target as Uint8Array).fill(elementValue(dtype, pad.value) as number);
  const inner = elementsOf(shape.slice(pad.axis + 1));
  const paddedBlock = shape[pad.axis]! * inner;
  let targetOffset = 0;
  for (const tensor of tensors) {
    const source = tensor.data as Uint8Array;
    const block = tensor.shape[pad.axis]! * inner;
    const outer = elementsOf(tensor.shape.slice(0, pad.axis));
    for (let o = 0; o < outer; o++) {
      (target as Uint8Array).set(source.subarray(o * block, (o + 1) * block), targetOffset + o * paddedBlock);
    }
    targetOffset += outer * paddedBlock;
  }
}

/**
 * Concatenates each named input of `requests` along axis 0 into one newly allocated array per input.
 * Requests may carry several rows. With `pad`, the named inputs' padded axis is evened out to the
 * largest in the batch, filled with the pad value. The result's buffers belong to it alone, so a
 * ModelSession transfers rather than copies them: do not read them after passing them to run().
 */
export function stackInputs(
  requests: TensorMap[],
  names: string[],
  pad: Readonly<Record<string, PadSpec>> = {},
): TensorMap {
  if (requests.length === 0) throw new Error('cannot stack an empty batch');
  const stacked: TensorMap = {};
  for (const name of names) {
    const tensors = requests.map((request, index) => {
      const tensor = request[name];
      if (tensor === undefined) throw new Error(`request ${index} of the batch lacks input '${name}'`);
      return tensor;
    });
    stacked[name] = stackOne(name, tensors, pad[name]);
  }
  return stacked;
}

/**
 * Hands each request its rows of every output, as views over the batch's buffers (string tensors:
 * new arrays of the same strings). Every output's first axis must be the batch axis.
 */
export function splitOutputs(outputs: TensorMap, rows: number[]): TensorMap[] {
  const totalRows = rows.reduce((sum, count) => sum + count, 0);
  const perRequest: TensorMap[] = rows.map(() => ({}));
  for (const [name, tensor] of Object.entries(outputs)) {
    if (tensor.shape[0] !== totalRows) {
      throw new Error(
        `output '${name}' has shape [${tensor.shape.join(', ')}]: its first axis is not the batch of ${totalRows} rows`,
      );
    }
    const innerShape = tensor.shape.slice(1);
    const rowElements = elementsOf(innerShape);
    let row = 0;
    rows.forEach((count, index) => {
      const start = row * rowElements;
      const end = (row + count) * rowElements;
      const data = Array.isArray(tensor.data)
        ? tensor.data.slice(start, end)
        : tensor.data.subarray(start, end);
      perRequest[index]![name] = { dtype: tensor.dtype, shape: [count, ...innerShape], data };
      row += count;
    });
  }
  return perRequest;
}

/**
 * Cuts one request's outputs of a padded batch back to the request's own size (`crop` rules of the
 * model config): each rule's axis gets the size the rule gives for the request's padded input. Checks
 * each rule against the batch: the axis must have the size the rule gives for the padded size
 * (`paddedSizes`, input name -> padded axis size of the stacked batch), else the rule does not describe
 * the model and cropping by it would answer wrong values. Outputs without rules pass through.
 */
export function cropOutputs(
  outputs: TensorMap,
  inputs: TensorMap,
  paddedSizes: Readonly<Record<string, number>>,
  pad: Readonly<Record<string, PadSpec>>,
  crop: Readonly<Record<string, CropRule[]>>,
): TensorMap {
  const cropped: TensorMap = {};
  for (const [name, tensor] of Object.entries(outputs)) {
    const target = [...tensor.shape];
    for (const rule of crop[name] ?? []) {
      const paddedAxis = pad[rule.input]?.axis;
      const paddedSize = paddedSizes[rule.input];
      const ownSize = paddedAxis === undefined ? undefined : inputs[rule.input]?.shape[paddedAxis];
      if (paddedSize === undefined || ownSize === undefined) {
        throw new Error(`output '${name}': its crop rule reads '${rule.input}', which is not a padded input`);
      }
      const expected = croppedSize(rule, paddedSize);
      if (tensor.shape[rule.axis] !== expected) {
        throw new Error(
          `output '${name}' has ${tensor.shape[rule.axis]} on axis ${rule.axis} for '${rule.input}' padded to ${paddedSize}, but its crop rule gives ${expected}: the rule does not describe the model`,
        );
      }
      target[rule.axis] = croppedSize(rule, ownSize);
    }
    cropped[name] = cropTo(tensor, target);
  }
  return cropped;
}

/** The leading `shape` corner of `tensor` (each dim <= the tensor's), copied; the tensor itself if equal. */
function cropTo(tensor: Tensor, shape: number[]): Tensor {
  const source = tensor.shape;
  let last = shape.length - 1;
  while (last >= 0 && shape[last] === source[last]) last--;
  if (last < 0) return tensor;
  // Past axis `last` the dims are whole: each run of `shape[last] × inner` elements is contiguous.
  const inner = elementsOf(source.slice(last + 1));
  const run = shape[last]! * inner;
  const runs = elementsOf(shape.slice(0, last));
  const strides = source.slice(0, last).map((_, axis) => elementsOf(source.slice(axis + 1)));
  const data = allocate(tensor.dtype, runs * run);
  const index = new Array<number>(last).fill(0);
  for (let r = 0; r < runs; r++) {
    let from = 0;
    for (let axis = 0; axis < last; axis++) from += index[axis]! * strides[axis]!;
    if (Array.isArray(data)) {
      const strings = tensor.data as string[];
      for (let i = 0; i < run; i++) data[r * run + i] = strings[from + i]!;
    } else {
      (data as Uint8Array).set((tensor.data as Uint8Array).subarray(from, from + run), r * run);
    }
    // The next index of the leading axes, the last one fastest.
    for (let axis = last - 1; axis >= 0; axis--) {
      if (++index[axis]! < shape[axis]!) break;
      index[axis] = 0;
    }
  }
  return { dtype: tensor.dtype, shape, data };
}
