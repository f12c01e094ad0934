/**
 * Tensor element facts and conversions between wire forms and typed arrays. Element bytes on the
 * wire are little-endian, which is what typed arrays use on the hosts we run on; so a received
 * buffer becomes a typed-array view with no copy (unless its offset is misaligned).
 */
import { Buffer } from 'node:buffer';
import { endianness } from 'node:os';
import { BadRequestError } from './errors.ts';
import { float16BitsToNumber, numberToFloat16Bits } from './float16.ts';
import type { DType, NumericDType, Tensor, TensorData } from './types.ts';
import { DTYPES } from './types.ts';

if (endianness() !== 'LE') {
  throw new Error(
    'inferq needs a little-endian host: tensor bytes are little-endian on the wire and are used as native typed arrays',
  );
}

export const BYTES_PER_ELEMENT: Readonly<Record<NumericDType, number>> = {
  float32: 4,
  float64: 8,
  float16: 2,
  int8: 1,
  int16: 2,
  int32: 4,
  int64: 8,
  uint8: 1,
  uint16: 2,
  uint32: 4,
  uint64: 8,
  bool: 1,
};

const DTYPE_SET: ReadonlySet<string> = new Set(DTYPES);

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && DTYPE_SET.has(value);
}

export function isNumericDType(dtype: DType): dtype is NumericDType {
  return dtype !== 'string';
}

/**
 * Number of elements of `shape`, or undefined when it is not a safe integer. A zero dimension
 * anywhere makes it 0 however large the others are.
 */
export function elementCount(shape: readonly number[]): number | undefined {
  if (shape.includes(0)) return 0;
  let count = 1;
  for (const dim of shape) {
    count *= dim;
    if (!Number.isSafeInteger(count)) return undefined;
  }
  return count;
}

/**
 * The elements held in `bytes` (little-endian, densely packed) as the typed array of `dtype`.
 * A view over the same memory when `bytes.byteOffset` is a multiple of the element size; a copy
 * otherwise, since typed arrays cannot be misaligned. `bytes.byteLength` must be a multiple of the
 * element size.
 */
export function tensorDataFromBytes(dtype: NumericDType, bytes: Uint8Array): Exclude<TensorData, string[]> {
  const size = BYTES_PER_ELEMENT[dtype];
  if (bytes.byteLength % size !== 0) {
    throw new RangeError(`${bytes.byteLength} bytes are not a whole number of ${dtype} elements`);
  }
  let source = bytes;
  if (bytes.byteOffset % size !== 0) {
    source = new Uint8Array(bytes.byteLength);
    source.set(bytes);
  }
  const { buffer, byteOffset } = source;
  const length = source.byteLength / size;
  switch (dtype) {
    case 'float32':
      return new Float32Array(buffer, byteOffset, length);
    case 'float64':
      return new Float64Array(buffer, byteOffset, length);
    case 'float16':
    case 'uint16':
      return new Uint16Array(buffer, byteOffset, length);
    case 'int8':
      return new Int8Array(buffer, byteOffset, length);
    case 'int16':
      return new Int16Array(buffer, byteOffset, length);
    case 'int32':
      return new Int32Array(buffer, byteOffset, length);
    case 'int64':
      return new BigInt64Array(buffer, byteOffset, length);
    case 'uint8':
    case 'bool':
      return new Uint8Array(buffer, byteOffset, length);
    case 'uint32':
      return new Uint32Array(buffer, byteOffset, length);
    case 'uint64':
      return new BigUint64Array(buffer, byteOffset, length);
    default:
      return assertNever(dtype);
  }
}

/** The element bytes of a numeric tensor's data, as a view (no copy). */
export function tensorDataBytes(data: Exclude<TensorData, string[]>): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Checks that `data` is the typed array `dtype` is carried in, with `count` elements. */
export function describeDataMismatch(dtype: DType, data: TensorData, count: number): string | undefined {
  const expected = expectedDataType(dtype);
  if (!(data instanceof expected)) {
    return `${dtype} data must be a ${expected.name}, got ${data?.constructor?.name ?? typeof data}`;
  }
  if (data.length !== count) return `data holds ${data.length} elements, the shape needs ${count}`;
  if (dtype === 'string' && !(data as unknown[]).every((item) => typeof item === 'string')) {
    return 'string data must hold only strings';
  }
  return undefined;
}

/** The typed array (Array for strings) a tensor of `dtype` carries its data in. */
export function expectedDataType(dtype: DType): { new (length: number): TensorData; name: string } {
  switch (dtype) {
    case 'float32':
      return Float32Array;
    case 'float64':
      return Float64Array;
    case 'float16':
    case 'uint16':
      return Uint16Array;
    case 'int8':
      return Int8Array;
    case 'int16':
      return Int16Array;
    case 'int32':
      return Int32Array;
    case 'int64':
      return BigInt64Array;
    case 'uint8':
    case 'bool':
      return Uint8Array;
    case 'uint32':
      return Uint32Array;
    case 'uint64':
      return BigUint64Array;
    case 'string':
      return Array as unknown as { new (length: number): string[]; name: string };
    default:
      return assertNever(dtype);
  }
}

const INTEGER_RANGES = {
  int8: [-(2 ** 7), 2 ** 7 - 1],
  int16: [-(2 ** 15), 2 ** 15 - 1],
  int32: [-(2 ** 31), 2 ** 31 - 1],
  uint8: [0, 2 ** 8 - 1],
  uint16: [0, 2 ** 16 - 1],
  uint32: [0, 2 ** 32 - 1],
} as const;

const BIGINT_RANGES = {
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
} as const;

const DECIMAL_INTEGER = /^-?[0-9]+$/;

/**
 * Elements given as a list (JSON `data` arrays, or MessagePack arrays) to the typed array of
 * `dtype`. Accepts what docs/api.md allows: numbers; int64/uint64 also as decimal strings (and bigints,
 * which MessagePack integers beyond 2^53 decode to); floats also as "NaN", "Infinity",
 * "-Infinity"; bool as true/false or 0/1. Refuses values out of the dtype's range rather than
 * wrapping them. `where` names the tensor in error details.
 */
export function tensorDataFromList(dtype: DType, values: readonly unknown[], where: string): TensorData {
  const bad = (index: number, expected: string): never => {
    throw new BadRequestError(
      `${where}.data[${index}]: expected ${expected}, got ${describeValue(values[index])}`,
    );
  };
  const length = values.length;
  switch (dtype) {
    case 'string': {
      for (let i = 0; i < length; i++) if (typeof values[i] !== 'string') bad(i, 'a string');
      return values.slice() as string[];
    }
    case 'float32':
    case 'float64':
    case 'float16': {
      const result =
        dtype === 'float32'
          ? new Float32Array(length)
          : dtype === 'float64'
            ? new Float64Array(length)
            : new Uint16Array(length);
      const toElement = dtype === 'float16' ? numberToFloat16Bits : (x: number) => x;
      for (let i = 0; i < length; i++) {
        const value = values[i];
        let number: number;
        if (typeof value === 'number') number = value;
        else if (value === 'NaN') number = Number.NaN;
        else if (value === 'Infinity') number = Number.POSITIVE_INFINITY;
        else if (value === '-Infinity') number = Number.NEGATIVE_INFINITY;
        else return bad(i, 'a number or "NaN", "Infinity", "-Infinity"');
        result[i] = toElement(number);
      }
      return result;
    }
    case 'bool': {
      const result = new Uint8Array(length);
      for (let i = 0; i < length; i++) {
        const value = values[i];
        if (value === true || value === 1) result[i] = 1;
        else if (value !== false && value !== 0) bad(i, 'true, false, 0 or 1');
      }
      return result;
    }
    case 'int8':
    case 'int16':
    case 'int32':
    case 'uint8':
    case 'uint16':
    case 'uint32': {
      const [min, max] = INTEGER_RANGES[dtype];
      const result = new (expectedDataType(dtype) as new (length: number) => Int32Array)(length);
      for (let i = 0; i < length; i++) {
        const value = values[i];
        if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
          bad(i, `an integer from ${min} to ${max}`);
        }
        result[i] = value as number;
      }
      return result;
    }
    case 'int64':
    case 'uint64': {
      const [min, max] = BIGINT_RANGES[dtype];
      const result = dtype === 'int64' ? new BigInt64Array(length) : new BigUint64Array(length);
      const expected = `an integer from ${min} to ${max} (beyond 2^53 as a decimal string)`;
      for (let i = 0; i < length; i++) {
        const value = values[i];
        let integer: bigint;
        // A JSON number beyond 2^53 has already been rounded by the parser: refuse it, don't guess.
        if (typeof value === 'number' && Number.isSafeInteger(value)) integer = BigInt(value);
        else if (typeof value === 'string' && DECIMAL_INTEGER.test(value) && value.length <= 21)
          integer = BigInt(value);
        else if (typeof value === 'bigint') integer = value;
        else return bad(i, expected);
        if (integer < min || integer > max) bad(i, expected);
        result[i] = integer;
      }
      return result;
    }
    default:
      return assertNever(dtype);
  }
}

/**
 * The elements as a JSON-ready list: numbers, except int64/uint64 as decimal strings, non-finite
 * floats as "NaN"/"Infinity"/"-Infinity", float16 decoded to numbers, bool as true/false.
 */
export function tensorDataToList(tensor: Tensor): (number | string | boolean)[] {
  const { dtype, data } = tensor;
  switch (dtype) {
    case 'string':
      return (data as string[]).slice();
    case 'bool':
      return Array.from(data as Uint8Array, (x) => x !== 0);
    case 'int64':
    case 'uint64':
      return Array.from(data as BigInt64Array | BigUint64Array, (x) => x.toString());
    case 'float16':
      return Array.from(data as Uint16Array, (bits) => finiteOrName(float16BitsToNumber(bits)));
    case 'float32':
    case 'float64':
      return Array.from(data as Float32Array | Float64Array, finiteOrName);
    case 'int8':
    case 'int16':
    case 'int32':
    case 'uint8':
    case 'uint16':
    case 'uint32':
      return Array.from(data as Int32Array);
    default:
      return assertNever(dtype);
  }
}

function finiteOrName(x: number): number | string {
  if (Number.isFinite(x)) return x;
  if (Number.isNaN(x)) return 'NaN';
  return x > 0 ? 'Infinity' : '-Infinity';
}

const BASE64_ALPHABET = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/')
  BASE64_ALPHABET[c.charCodeAt(0)] = 1;

/**
 * Strict base64 (standard alphabet, padding optional): Buffer.from alone skips invalid characters.
 * Checked by a loop, not a regular expression: a backtracking pattern over a body-sized string
 * overflowed the stack (a 4 MB `b64` answered 500).
 */
export function decodeBase64Strict(text: string): Uint8Array | undefined {
  let end = text.length;
  let padding = 0;
  while (padding < 2 && end > 0 && text.charCodeAt(end - 1) === 0x3d) {
    end--;
    padding++;
  }
  // Padded: whole groups of 4 with 2 or 3 data characters in the last; unpadded: never 1 left over.
  if (padding > 0 ? text.length % 4 !== 0 : end % 4 === 1) return undefined;
  for (let i = 0; i < end; i++) {
    const code = text.charCodeAt(i);
    if (code >= 128 || BASE64_ALPHABET[code] === 0) return undefined;
  }
  return Buffer.from(text, 'base64');
}

export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Uint8Array) return 'binary data';
  if (typeof value === 'string') return value.length > 40 ? 'a long string' : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  if (typeof value === 'object') return 'a map';
  return `a value of type ${typeof value}`;
}

export function assertNever(value: never): never {
  throw new Error(`unexpected value: ${String(value)}`);
}
