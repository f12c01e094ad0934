// A client of inferq's infer route written from the wire format's description (README, apps/api),
// not from packages/protocol's codec, so that a codec bug cannot cancel itself out: bodies are built
// and answers read here, in MessagePack (`bin` element bytes) and in JSON (lists of numbers, 64-bit
// integers as decimal strings, non-finite floats as "NaN"/"Infinity"/"-Infinity").
import type { DType, Tensor, TensorData, TensorMap } from '@inferq/protocol';
import { Packr, Unpackr } from 'msgpackr';
import { typedArrayOf } from './typed-array.ts';

export type Encoding = 'msgpack' | 'json';
export const ENCODINGS: readonly Encoding[] = ['msgpack', 'json'];

const packr = new Packr({ useRecords: false, moreTypes: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'bigint' });

/** What the server answered for one request. */
export type Answer =
  | { kind: 'succeeded'; outputs: TensorMap }
  | { kind: 'failed'; code: string; message: string }
  /** Refused at submit (4xx/5xx) or ended in another state. */
  | { kind: 'refused'; status: number; detail: string };

// ---------------------------------------------------------------------------------------------
// float16 <-> number, for JSON (independent of packages/protocol/src/float16.ts)

const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);

function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0x1f) return fraction === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  return sign * (1024 + fraction) * 2 ** (exponent - 25);
}

/** The bits of a number that is exactly a float16 (what a server's float16 output is). */
function numberToHalf(value: number): number {
  if (Number.isNaN(value)) return 0x7e00;
  f32[0] = value;
  const bits = f32Bits[0] as number;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = ((bits >>> 23) & 0xff) - 127;
  const mantissa = bits & 0x7fffff;
  if (exponent === 128) return sign | 0x7c00;
  if (exponent < -24) return sign; // zero
  if (exponent < -14) return sign | ((mantissa | 0x800000) >>> (-1 - exponent)); // subnormal: m·2^-24
  if (exponent > 15) throw new Error(`${value} is not a float16`);
  return sign | ((exponent + 15) << 10) | (mantissa >>> 13);
}

// ---------------------------------------------------------------------------------------------
// Bodies

function bytesOf(data: Exclude<TensorData, string[]>): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function floatToJson(value: number): number | string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return 'Infinity';
  if (value === Number.NEGATIVE_INFINITY) return '-Infinity';
  return value;
}

function jsonList(tensor: Tensor): unknown[] {
  const { dtype, data } = tensor;
  switch (dtype) {
    case 'string':
      return [...(data as string[])];
    case 'bool':
      return Array.from(data as Uint8Array, (x) => x !== 0);
    case 'int64':
    case 'uint64':
      return Array.from(data as BigInt64Array, (x) => x.toString());
    case 'float16':
      return Array.from(data as Uint16Array, (bits) => floatToJson(halfToNumber(bits)));
    case 'float32':
    case 'float64':
      return Array.from(data as Float64Array, floatToJson);
    default:
      return Array.from(data as Int32Array);
  }
}

/**
 * The body of `POST /v1/models/{m}/infer` (cache off: every submit runs on the worker); with
 * `fields` = {}, inputs alone (a warm-up sample).
 */
export function encodeBody(
  inputs: TensorMap,
  encoding: Encoding,
  fields: Record<string, unknown> = { cache: false },
): Uint8Array {
  const wire: Record<string, unknown> = {};
  for (const [name, tensor] of Object.entries(inputs)) {
    const data =
      encoding === 'json'
        ? jsonList(tensor)
        : tensor.dtype === 'string'
          ? tensor.data
          : bytesOf(tensor.data as Exclude<TensorData, string[]>);
    wire[name] = { dtype: tensor.dtype, shape: tensor.shape, data };
  }
  const body = { inputs: wire, ...fields };
  return encoding === 'json' ? new TextEncoder().encode(JSON.stringify(body)) : packr.pack(body);
}

// ---------------------------------------------------------------------------------------------
// Answers

function jsonFloat(value: unknown): number {
  if (typeof value === 'number') return value;
  if (value === 'NaN') return Number.NaN;
  if (value === 'Infinity') return Number.POSITIVE_INFINITY;
  if (value === '-Infinity') return Number.NEGATIVE_INFINITY;
  throw new Error(`not a float: ${JSON.stringify(value)}`);
}

function fromJsonList(dtype: DType, list: unknown[]): TensorData {
  switch (dtype) {
    case 'string':
      return list.map((x) => {
        if (typeof x !== 'string') throw new Error(`not a string: ${JSON.stringify(x)}`);
        return x;
      });
    case 'bool':
      return Uint8Array.from(list, (x) => {
        if (typeof x !== 'boolean') throw new Error(`not a bool: ${JSON.stringify(x)}`);
        return x ? 1 : 0;
      });
    case 'int64':
    case 'uint64': {
      const integers = list.map((x) => {
        if (typeof x !== 'string')
          throw new Error(`${dtype} elements come as decimal strings, got ${JSON.stringify(x)}`);
        return BigInt(x);
      });
      return dtype === 'int64' ? BigInt64Array.from(integers) : BigUint64Array.from(integers);
    }
    case 'float16':
      return Uint16Array.from(list, (x) => numberToHalf(jsonFloat(x)));
    case 'float32':
      return Float32Array.from(list, jsonFloat);
    case 'float64':
      return Float64Array.from(list, jsonFloat);
    default: {
      const Typed = {
        int8: Int8Array,
        int16: Int16Array,
        int32: Int32Array,
        uint8: Uint8Array,
        uint16: Uint16Array,
        uint32: Uint32Array,
      }[dtype];
      const integers = list.map((x) => {
        if (typeof x !== 'number' || !Number.isInteger(x))
          throw new Error(`not an integer: ${JSON.stringify(x)}`);
        return x;
      });
      return (Typed as typeof Int32Array).from(integers);
    }
  }
}

function readTensor(wire: unknown, encoding: Encoding, where: string): Tensor {
  const { dtype, shape, data } = wire as { dtype: DType; shape: number[]; data: unknown };
  if (encoding === 'msgpack' && dtype !== 'string') {
    if (!(data instanceof Uint8Array)) throw new Error(`${where}: data is not bin`);
    return { dtype, shape, data: typedArrayOf(dtype, data) };
  }
  if (!Array.isArray(data)) throw new Error(`${where}: data is not a list`);
  return { dtype, shape, data: fromJsonList(dtype, data) };
}

function decode(bytes: Uint8Array, encoding: Encoding): Record<string, unknown> {
  return (
    encoding === 'json' ? JSON.parse(new TextDecoder().decode(bytes)) : unpackr.unpack(bytes)
  ) as Record<string, unknown>;
}

function answerOf(record: Record<string, unknown>, encoding: Encoding): Answer | undefined {
  const status = record.status;
  if (status === 'succeeded') {
    const outputs: TensorMap = {};
    for (const [name, wire] of Object.entries((record.outputs ?? {}) as Record<string, unknown>)) {
      outputs[name] = readTensor(wire, encoding, `outputs.${name}`);
    }
    return { kind: 'succeeded', outputs };
  }
  if (status === 'failed') {
    const error = (record.error ?? {}) as { code?: string; message?: string };
    return { kind: 'failed', code: String(error.code), message: String(error.message) };
  }
  if (status === 'queued' || status === 'running') return undefined;
  return { kind: 'refused', status: 200, detail: `ended ${String(status)}` };
}

const WAIT_SECONDS = 30;

/**
 * Submits one request and waits for its end (`Prefer: wait`, then `?wait` long-polls while it is
 * not finished).
 */
export async function infer(
  baseUrl: string,
  model: string,
  inputs: TensorMap,
  encoding: Encoding,
): Promise<Answer> {
  const mediaType = encoding === 'json' ? 'application/json' : 'application/msgpack';
  const response = await fetch(`${baseUrl}/v1/models/${encodeURIComponent(model)}/infer`, {
    method: 'POST',
    headers: { 'content-type': mediaType, accept: mediaType, prefer: `wait=${WAIT_SECONDS}` },
    body: encodeBody(inputs, encoding),
  });
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (response.status !== 200 && response.status !== 202) {
    const text = new TextDecoder().decode(bytes);
    let detail = text;
    try {
      const problem = JSON.parse(text) as { detail?: string; title?: string };
      detail = problem.detail ?? problem.title ?? text;
    } catch {
      // not JSON: the raw text says it
    }
    return { kind: 'refused', status: response.status, detail };
  }
  let record = decode(bytes, encoding);
  for (;;) {
    const answer = answerOf(record, encoding);
    if (answer !== undefined) return answer;
    const poll = await fetch(`${baseUrl}/v1/requests/${String(record.id)}?wait=${WAIT_SECONDS}`, {
      headers: { accept: mediaType },
    });
    record = decode(new Uint8Array(await poll.arrayBuffer()), encoding);
  }
}
