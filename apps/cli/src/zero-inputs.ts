import {
  BYTES_PER_ELEMENT,
  elementCount,
  type TensorMap,
  type TensorSpec,
  tensorDataFromBytes,
} from '@inferq/protocol';

/**
 * An all-zero input for every input of a model signature: fixed dimensions as declared, a dynamic
 * (negative, normally -1) batch axis as 1, and other dynamic dimensions as `dynamicSize`.
 */
export function zeroInputs(inputs: readonly TensorSpec[], dynamicSize: number): TensorMap {
  const map: TensorMap = {};
  for (const spec of inputs) {
    const shape = spec.shape.map((dim, axis) => (dim >= 0 ? dim : axis === 0 ? 1 : dynamicSize));
    const count = elementCount(shape);
    if (count === undefined) throw new Error(`input ${spec.name}: shape [${shape.join(', ')}] is too large`);
    map[spec.name] =
      spec.dtype === 'string'
        ? { dtype: 'string', shape, data: Array.from({ length: count }, () => '') }
        : {
            dtype: spec.dtype,
            shape,
            data: tensorDataFromBytes(spec.dtype, new Uint8Array(count * BYTES_PER_ELEMENT[spec.dtype])),
          };
  }
  return map;
}
