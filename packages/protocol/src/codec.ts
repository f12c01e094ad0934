/**
 * Bodies and stored values on the wire (docs/api.md "Tensors on the wire"): the infer request, the
 * request record, the completion message, and the MessagePack forms kept in Redis (payload and
 * outputs). Decoding turns tensor bytes into typed-array views over the received buffer.
 * One file, though long: JSON and MessagePack share the tensor checks and limits, and keeping the two
 * formats side by side is what keeps them in agreement (the hostile-input property tests cover both).
 */
import { z } from 'zod';
import { BadRequestError, InferqError } from './errors.ts';
import { findJsonStructureProblem } from './json-structure.ts';
import { packStandard, type StructureLimits, unpackStandard, unpackTrusted } from './msgpack.ts';
import {
  BYTES_PER_ELEMENT,
  decodeBase64Strict,
  describeDataMismatch,
  describeValue,
  elementCount,
  isDType,
  tensorDataBytes,
  tensorDataFromBytes,
  tensorDataFromList,
  tensorDataToList,
} from './tensor.ts';
import type {
  CompletionMessage,
  InferRequestBody,
  InputLimits,
  RequestRecord,
  Tensor,
  TensorMap,
  Timings,
  WireFormat,
} from './types.ts';
import { DEFAULT_INPUT_LIMITS, DTYPES } from './types.ts';

/** Caps on `metadata`: it is stored with the record and echoed back, so it stays small. */
export const METADATA_LIMITS = { maxEntries: 32, maxKeyLength: 128, maxStringLength: 1024 } as const;

/** Caps on names: tensor names, requested outputs, callback channel. */
export const MAX_NAME_LENGTH = 256;

/**
 * For values this system wrote itself (payloads, outputs, records): structure is still checked,
 * sizes are not capped.
 */
const TRUSTED_LIMITS: InputLimits = {
  maxElementsPerTensor: Number.MAX_SAFE_INTEGER,
  maxRank: Number.POSITIVE_INFINITY,
  maxDimension: Number.MAX_SAFE_INTEGER,
  maxStringBytes: Number.POSITIVE_INFINITY,
  maxInputs: Number.POSITIVE_INFINITY,
  maxListElements: Number.POSITIVE_INFINITY,
};

/**
 * What a body of up to `requests` infer bodies (1, or a bulk body's cap) may hold before it is
 * parsed: the listed elements allowed (for the whole body, however many requests it holds) plus room
 * for everything else of each request (names, shapes, up to 1,024 requested outputs, metadata), and
 * a few maps and arrays per tensor. A valid body never comes near either; a body of millions of
 * tiny values is refused before it costs memory.
 */
export function structureLimitsFor(limits: InputLimits, requests = 1): StructureLimits {
  return {
    maxValues: limits.maxListElements + requests * (limits.maxInputs * (2 * limits.maxRank + 16) + 4096),
    maxContainers: requests * (4 * limits.maxInputs + 16) + 2,
  };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// The infer request

const isHttpUrl = (value: string): boolean => {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
};

/** The `POST …/infer` envelope; `inputs` is checked by hand (parseTensorMap). */
export const RequestEnvelope = z.strictObject({
  // Checked by hand (parseTensorMap): typed arrays are beyond a schema's reach.
  inputs: z.unknown(),
  outputs: z
    .array(
      z
        .string('must be an output name')
        .min(1, 'must be a non-empty output name')
        .max(MAX_NAME_LENGTH, `must be at most ${MAX_NAME_LENGTH} characters`),
      'must be an array of output names',
    )
    .min(1, 'must name at least one output; leave it out to get them all')
    .max(1024, 'names too many outputs')
    .optional(),
  priority: z.int('must be an integer').optional(),
  timeoutMs: z
    .int('must be a positive integer (milliseconds)')
    .positive('must be a positive integer (milliseconds)')
    .optional(),
  cache: z.boolean('must be true or false').optional(),
  callback: z
    .strictObject(
      {
        channel: z
          .string('must be a string')
          .min(1, 'must not be empty')
          .max(MAX_NAME_LENGTH, `must be at most ${MAX_NAME_LENGTH} characters`)
          .optional(),
        url: z
          .string('must be a string')
          .max(2048, 'must be at most 2048 characters')
          .refine(isHttpUrl, 'must be an absolute http:// or https:// URL')
          .optional(),
      },
      'must be a map { channel?, url? }',
    )
    .optional(),
  metadata: z
    .record(
      z
        .string()
        .min(1, 'keys must not be empty')
        .max(METADATA_LIMITS.maxKeyLength, `keys must be at most ${METADATA_LIMITS.maxKeyLength} characters`),
      z.union(
        [
          z
            .string()
            .max(
              METADATA_LIMITS.maxStringLength,
              `string values must be at most ${METADATA_LIMITS.maxStringLength} characters`,
            ),
          z.number(),
          z.boolean(),
        ],
        'values must be strings, finite numbers or booleans',
      ),
      'must be a flat map of string, number or boolean values',
    )
    .refine(
      (metadata) => Object.keys(metadata).length <= METADATA_LIMITS.maxEntries,
      `must have at most ${METADATA_LIMITS.maxEntries} entries`,
    )
    .optional(),
});

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    const where = issue.path.length === 0 ? 'body' : issue.path.join('.');
    const known =
      issue.path.length === 0
        ? 'inputs, outputs, priority, timeoutMs, cache, callback, metadata'
        : 'channel, url';
    return `${where}: unknown field ${issue.keys.map((key) => `'${key}'`).join(', ')}; known fields: ${known}`;
  }
  return `${issue.path.join('.')}: ${issue.message}`;
}

/**
 * Parses and structurally validates a `POST .../infer` body (not yet against a model signature).
 * Tensor data become typed-array views over `body` where alignment allows: keep `body` alive and
 * unmodified while the result is in use. Throws BadRequestError (400) naming what is wrong.
 */
export function decodeInferRequest(
  body: Uint8Array,
  format: WireFormat,
  limits: InputLimits = DEFAULT_INPUT_LIMITS,
): InferRequestBody {
  return inferRequestFromValue(parseBody(body, format, 'body', structureLimitsFor(limits)), format, limits);
}

/**
 * Decodes an `infer:bulk` body, `{ requests: [ <infer body>, ... ] }`. Every request is checked
 * before any is accepted; an error names the offending request (`requests[3]: ...`).
 */
export function decodeBulkInferRequest(
  body: Uint8Array,
  format: WireFormat,
  limits: InputLimits = DEFAULT_INPUT_LIMITS,
  maxRequests = Number.POSITIVE_INFINITY,
): InferRequestBody[] {
  const parsed = parseBody(body, format, 'body', structureLimitsFor(limits, maxRequests));
  if (!isPlainMap(parsed) || !Array.isArray(parsed.requests)) {
    throw new BadRequestError(`body must be a map with "requests", an array of infer bodies`);
  }
  const requests: unknown[] = parsed.requests;
  if (requests.length === 0) throw new BadRequestError('"requests" is empty');
  if (requests.length > maxRequests) {
    throw new BadRequestError(
      `"requests" holds ${requests.length} requests; at most ${maxRequests} are allowed`,
    );
  }
  return requests.map((item, index) =>
    checkBulkRequest(index, () => inferRequestFromValue(item, format, limits)),
  );
}

/** Runs a check of request `index` of a bulk body; a client error it throws names that request. */
export function checkBulkRequest<T>(index: number, check: () => T): T {
  try {
    return check();
  } catch (error: unknown) {
    if (error instanceof InferqError) error.message = `requests[${index}]: ${error.message}`;
    throw error;
  }
}

function inferRequestFromValue(parsed: unknown, format: WireFormat, limits: InputLimits): InferRequestBody {
  if (!isPlainMap(parsed)) {
    throw new BadRequestError(`body must be a map with "inputs", got ${describeValue(parsed)}`);
  }
  if (parsed.inputs === undefined) throw new BadRequestError('body has no "inputs"');
  const envelope = RequestEnvelope.safeParse(parsed);
  if (!envelope.success) {
    throw new BadRequestError(describeIssue(envelope.error.issues[0] as z.core.$ZodIssue));
  }
  const { outputs, priority, timeoutMs, cache, callback, metadata } = envelope.data;
  const request: InferRequestBody = { inputs: parseTensorMap(parsed.inputs, 'inputs', format, limits) };
  if (outputs !== undefined) request.outputs = outputs;
  if (priority !== undefined) request.priority = priority;
  if (timeoutMs !== undefined) request.timeoutMs = timeoutMs;
  if (cache !== undefined) request.cache = cache;
  if (callback !== undefined) {
    request.callback = {};
    if (callback.channel !== undefined) request.callback.channel = callback.channel;
    if (callback.url !== undefined) request.callback.url = callback.url;
  }
  if (metadata !== undefined) request.metadata = metadata;
  return request;
}

/** `limits` undefined: a value this system wrote itself, whose size is not capped. */
function parseBody(body: Uint8Array, format: WireFormat, what: string, limits?: StructureLimits): unknown {
  if (body.byteLength === 0) throw new BadRequestError(`${what} is empty`);
  if (format === 'json') {
    let text: string;
    try {
      text = utf8.decode(body);
    } catch {
      throw new BadRequestError(`${what} is not valid UTF-8`);
    }
    const problem = limits === undefined ? undefined : findJsonStructureProblem(body, limits);
    if (problem !== undefined) throw new BadRequestError(`${what} is refused: ${problem}`);
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new BadRequestError(`${what} is not valid JSON: ${errorMessage(error)}`);
    }
  }
  try {
    return unpackStandard(body, limits);
  } catch (error) {
    throw new BadRequestError(`${what} is not valid MessagePack: ${errorMessage(error)}`);
  }
}

function parseTensorMap(value: unknown, where: string, format: WireFormat, limits: InputLimits): TensorMap {
  if (!isPlainMap(value)) {
    throw new BadRequestError(`${where} must be a map of name -> tensor, got ${describeValue(value)}`);
  }
  // An empty map is valid here: a model may take no inputs (ONNX's Constant, a generator); against a
  // model that takes some, validateInputs answers 422 naming the first missing one.
  const names = Object.keys(value);
  if (names.length > limits.maxInputs) {
    throw new BadRequestError(
      `${where} holds ${names.length} tensors; at most ${limits.maxInputs} are allowed`,
    );
  }
  const map: TensorMap = {};
  let listed = 0;
  for (const name of names) {
    if (name.length === 0 || name.length > MAX_NAME_LENGTH || name === '__proto__') {
      throw new BadRequestError(
        `${where}: tensor name ${describeValue(name)} is empty, too long or reserved`,
      );
    }
    const tensor = parseTensor(value[name], `${where}.${name}`, format, limits);
    // String tensors are always lists; numeric ones are when `data` is an array, not bytes.
    if (Array.isArray((value[name] as { data?: unknown }).data)) listed += tensor.data.length;
    if (listed > limits.maxListElements) {
      throw new BadRequestError(
        `${where}: ${listed} elements sent as lists, more than the ${limits.maxListElements} allowed; ` +
          'send large tensors as MessagePack bin or JSON { "b64": ... }',
      );
    }
    map[name] = tensor;
  }
  return map;
}

function parseTensor(value: unknown, where: string, format: WireFormat, limits: InputLimits): Tensor {
  if (!isPlainMap(value)) {
    throw new BadRequestError(
      `${where}: a tensor must be a map {dtype, shape, data}, got ${describeValue(value)}`,
    );
  }
  for (const key of Object.keys(value)) {
    if (key !== 'dtype' && key !== 'shape' && key !== 'data') {
      throw new BadRequestError(`${where}: unknown tensor field '${key}'; a tensor is {dtype, shape, data}`);
    }
  }
  const { dtype, shape, data } = value;
  for (const [field, present] of [
    ['dtype', dtype],
    ['shape', shape],
    ['data', data],
  ] as const) {
    if (present === undefined)
      throw new BadRequestError(`${where}: missing "${field}"; a tensor is {dtype, shape, data}`);
  }
  if (!isDType(dtype)) {
    throw new BadRequestError(
      `${where}.dtype: unknown dtype ${describeValue(dtype)}; expected one of ${DTYPES.join(', ')}`,
    );
  }
  const dims = parseShape(shape, where, limits);
  const count = elementCount(dims);
  if (count === undefined || count > limits.maxElementsPerTensor) {
    throw new BadRequestError(
      `${where}.shape: [${dims.join(', ')}] has more than the ${limits.maxElementsPerTensor} elements allowed per tensor`,
    );
  }

  if (dtype === 'string') {
    if (!Array.isArray(data)) {
      throw new BadRequestError(
        `${where}.data: string tensors need an array of strings, got ${describeValue(data)}`,
      );
    }
    checkListLength(data, count, where);
    const strings = tensorDataFromList('string', data, where) as string[];
    const maxBytes = limits.maxStringBytes;
    for (let i = 0; i < strings.length; i++) {
      const text = strings[i] as string;
      // UTF-8 takes at most 3 bytes per UTF-16 unit: only long strings need counting.
      if (text.length * 3 > maxBytes && utf8Encoder.encode(text).byteLength > maxBytes) {
        throw new BadRequestError(`${where}.data[${i}]: string longer than ${maxBytes} bytes`);
      }
    }
    return { dtype, shape: dims, data: strings };
  }

  const elementBytes = BYTES_PER_ELEMENT[dtype];
  let bytes: Uint8Array | undefined;
  if (data instanceof Uint8Array) {
    bytes = data;
  } else if (format === 'json' && isPlainMap(data) && 'b64' in data) {
    if (Object.keys(data).length !== 1 || typeof data.b64 !== 'string') {
      throw new BadRequestError(`${where}.data: expected { "b64": "<base64>" }`);
    }
    bytes = decodeBase64Strict(data.b64);
    if (bytes === undefined) throw new BadRequestError(`${where}.data.b64: not valid base64`);
  } else if (Array.isArray(data)) {
    checkListLength(data, count, where);
    return { dtype, shape: dims, data: tensorDataFromList(dtype, data, where) };
  } else {
    const expected =
      format === 'msgpack'
        ? 'bin (the little-endian element bytes)'
        : 'an array of numbers or { "b64": "..." }';
    throw new BadRequestError(`${where}.data: expected ${expected}, got ${describeValue(data)}`);
  }
  if (bytes.byteLength !== count * elementBytes) {
    throw new BadRequestError(
      `${where}.data: ${bytes.byteLength} bytes, but shape [${dims.join(', ')}] of ${dtype} needs ${count * elementBytes}`,
    );
  }
  if (dtype === 'bool') {
    // One spelling per value keeps cache keys canonical and models free of surprises.
    const index = bytes.findIndex((byte) => byte > 1);
    if (index >= 0)
      throw new BadRequestError(`${where}.data[${index}]: bool bytes must be 0 or 1, got ${bytes[index]}`);
  }
  return { dtype, shape: dims, data: tensorDataFromBytes(dtype, bytes) };
}

function parseShape(shape: unknown, where: string, limits: InputLimits): number[] {
  if (!Array.isArray(shape)) {
    throw new BadRequestError(`${where}.shape: must be an array of dimensions, got ${describeValue(shape)}`);
  }
  if (shape.length > limits.maxRank) {
    throw new BadRequestError(
      `${where}.shape: rank ${shape.length} is more than the ${limits.maxRank} allowed`,
    );
  }
  for (let i = 0; i < shape.length; i++) {
    const dim: unknown = shape[i];
    if (typeof dim !== 'number' || !Number.isSafeInteger(dim) || dim < 0) {
      throw new BadRequestError(
        `${where}.shape[${i}]: must be a non-negative integer, got ${describeValue(dim)}`,
      );
    }
    if (dim > limits.maxDimension) {
      throw new BadRequestError(
        `${where}.shape[${i}]: ${dim} is more than the ${limits.maxDimension} allowed`,
      );
    }
  }
  return shape.slice() as number[];
}

function checkListLength(data: unknown[], count: number, where: string): void {
  if (data.length !== count) {
    throw new BadRequestError(`${where}.data: ${data.length} elements, but the shape needs ${count}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Tensors out

function tensorToWire(tensor: Tensor, where: string, format: WireFormat): Record<string, unknown> {
  const count = elementCount(tensor.shape);
  const mismatch =
    count === undefined ? 'shape too large' : describeDataMismatch(tensor.dtype, tensor.data, count);
  if (mismatch !== undefined) throw new Error(`cannot encode ${where}: ${mismatch}`);
  let data: unknown;
  if (format === 'json') data = tensorDataToList(tensor);
  else if (tensor.dtype === 'string') data = tensor.data;
  else data = tensorDataBytes(tensor.data as Exclude<Tensor['data'], string[]>);
  return { dtype: tensor.dtype, shape: tensor.shape.slice(), data };
}

function tensorMapToWire(map: TensorMap, where: string, format: WireFormat): Record<string, unknown> {
  const wire: Record<string, unknown> = {};
  for (const [name, tensor] of Object.entries(map))
    wire[name] = tensorToWire(tensor, `${where}.${name}`, format);
  return wire;
}

function serialize(value: unknown, format: WireFormat): Uint8Array {
  return format === 'json' ? utf8Encoder.encode(JSON.stringify(value)) : packStandard(value);
}

/**
 * Decodes what this system wrote itself: a failure is a bug or corruption, not the client's fault,
 * so it surfaces as a plain Error.
 */
/** The fast decode of our own bytes; should they be corrupt, the checked one says precisely how. */
function unpackTrustedOrExplain(bytes: Uint8Array, kind: string): unknown {
  try {
    return unpackTrusted(bytes);
  } catch {
    return parseBody(bytes, 'msgpack', kind);
  }
}

function decodeTrusted<T>(
  kind: string,
  bytes: Uint8Array,
  format: WireFormat,
  build: (value: unknown) => T,
): T {
  let value: unknown;
  try {
    value = format === 'msgpack' ? unpackTrustedOrExplain(bytes, kind) : parseBody(bytes, format, kind);
  } catch (error) {
    throw new Error(errorMessage(error), { cause: error });
  }
  try {
    if (!isPlainMap(value)) throw new Error(`expected a map, got ${describeValue(value)}`);
    return build(value);
  } catch (error) {
    throw new Error(`invalid ${kind}: ${errorMessage(error)}`, { cause: error });
  }
}

/**
 * MessagePack map of name -> {dtype, shape, data (bin)}: the outputs kept in Redis.
 * The result views msgpackr's shared output buffer (see `packStandard`).
 */
export function encodeTensorMap(map: TensorMap): Uint8Array {
  return packStandard(tensorMapToWire(map, 'tensors', 'msgpack'));
}

/** Inverse of `encodeTensorMap`; tensor data are views over `bytes` where aligned. */
export function decodeTensorMap(bytes: Uint8Array): TensorMap {
  return decodeTrusted('tensor map', bytes, 'msgpack', (value) =>
    parseTensorMap(value, 'tensors', 'msgpack', TRUSTED_LIMITS),
  );
}

/** What the API stores for the worker: the validated inputs and the requested outputs. */
export interface Payload {
  inputs: TensorMap;
  outputs?: string[];
}

export function encodePayload(payload: Payload): Uint8Array {
  const wire: Record<string, unknown> = { inputs: tensorMapToWire(payload.inputs, 'inputs', 'msgpack') };
  if (payload.outputs !== undefined) wire.outputs = payload.outputs;
  return packStandard(wire);
}

export function decodePayload(bytes: Uint8Array): Payload {
  return decodeTrusted('payload', bytes, 'msgpack', (value) => {
    const wire = value as Record<string, unknown>;
    const payload: Payload = { inputs: parseTensorMap(wire.inputs, 'inputs', 'msgpack', TRUSTED_LIMITS) };
    if (wire.outputs !== undefined) {
      if (!Array.isArray(wire.outputs) || !wire.outputs.every((name) => typeof name === 'string')) {
        throw new Error('outputs must be an array of names');
      }
      payload.outputs = wire.outputs as string[];
    }
    return payload;
  });
}

// ---------------------------------------------------------------------------------------------
// The request record and the completion message

function timingsToWire(timings: Timings): Timings {
  const wire: Timings = {
    queueMs: timings.queueMs,
    batchWaitMs: timings.batchWaitMs,
    inferMs: timings.inferMs,
    totalMs: timings.totalMs,
  };
  if (timings.steps !== undefined) wire.steps = timings.steps;
  return wire;
}

/**
 * The request record as a response body (docs/api.md "Request record"): tensors per `format`, fields
 * in the documented order, undefined fields left out. Only the documented fields are written, so a
 * stored record's server-side fields (tenant, ...) never leak.
 */
export function encodeRecord(record: RequestRecord, format: WireFormat): Uint8Array {
  return serialize(recordToWire(record, format), format);
}

/**
 * The wire form `encodeRecord` serializes; `outputs`, when given, stands in for the record's
 * encoded outputs (encodeRecordJsonChunks puts placeholders there).
 */
export function recordToWire(
  record: RequestRecord,
  format: WireFormat,
  outputs?: Record<string, unknown>,
): Record<string, unknown> {
  const wire: Record<string, unknown> = {
    id: record.id,
    model: record.model,
    version: record.version,
    status: record.status,
    cached: record.cached,
  };
  if (record.coalesced !== undefined) wire.coalesced = record.coalesced;
  wire.createdAt = record.createdAt;
  if (record.startedAt !== undefined) wire.startedAt = record.startedAt;
  if (record.finishedAt !== undefined) wire.finishedAt = record.finishedAt;
  wire.timings = timingsToWire(record.timings);
  if (record.batchSize !== undefined) wire.batchSize = record.batchSize;
  if (outputs !== undefined) wire.outputs = outputs;
  else if (record.outputs !== undefined) wire.outputs = tensorMapToWire(record.outputs, 'outputs', format);
  if (record.error !== undefined) wire.error = { code: record.error.code, message: record.error.message };
  if (record.metadata !== undefined) wire.metadata = withoutUndefined(record.metadata);
  return wire;
}

/** Inverse of `encodeRecord` (for clients and tests). */
export function decodeRecord(bytes: Uint8Array, format: WireFormat): RequestRecord {
  return decodeTrusted('request record', bytes, format, (value) => {
    const wire = value as Record<string, unknown>;
    if (typeof wire.id !== 'string' || typeof wire.status !== 'string')
      throw new Error('missing id or status');
    const record = { ...wire } as unknown as RequestRecord;
    if (wire.outputs !== undefined)
      record.outputs = parseTensorMap(wire.outputs, 'outputs', format, TRUSTED_LIMITS);
    return record;
  });
}

/**
 * The pub/sub completion message; MessagePack unless `format` says JSON (webhook bodies).
 * `id` is the first key, so the encoded bytes start with the map header, the key "id" and the id
 * string: `withCompletionMessageId` (or a Lua script) can put another request's id in its place.
 */
export function encodeCompletionMessage(
  message: CompletionMessage,
  format: WireFormat = 'msgpack',
): Uint8Array {
  const wire: Record<string, unknown> = {
    id: message.id,
    status: message.status,
    model: message.model,
    version: message.version,
    cached: message.cached,
    timings: timingsToWire(message.timings),
  };
  if (message.outputs !== undefined) wire.outputs = tensorMapToWire(message.outputs, 'outputs', format);
  if (message.error !== undefined) wire.error = { code: message.error.code, message: message.error.message };
  if (message.startedAt !== undefined) wire.startedAt = message.startedAt;
  if (message.finishedAt !== undefined) wire.finishedAt = message.finishedAt;
  if (message.batchSize !== undefined) wire.batchSize = message.batchSize;
  if (message.outputsOmitted === true) wire.outputsOmitted = true;
  return serialize(wire, format);
}

const OUTPUTS_KEY = packStandard('outputs');

/**
 * Largest encoded outputs a completion message carries; larger ones are left out (`outputsOmitted`)
 * and waiters read the record. Redis disconnects a subscriber whose unread messages pass 32 MB (8 MB
 * for a minute): six 16 MB results at once did, and every waiter of that connection lost its wake-up.
 * At 64 KiB it takes 512 messages unread at once to reach the hard limit, and a result this large
 * costs its waiter one more read of the record, small beside sending its bytes.
 */
export const MESSAGE_OUTPUT_BYTES = 64 * 1024;

/**
 * The completion message a worker publishes: with the outputs (already MessagePack, as stored) when
 * they are at most `MESSAGE_OUTPUT_BYTES`, else without them and `outputsOmitted: true`.
 */
export function encodeCompletionMessageForOutputs(
  message: Omit<CompletionMessage, 'outputs' | 'outputsOmitted'>,
  outputs: Uint8Array | undefined,
): Uint8Array {
  if (outputs === undefined) return encodeCompletionMessage(message);
  if (outputs.byteLength > MESSAGE_OUTPUT_BYTES)
    return encodeCompletionMessage({ ...message, outputsOmitted: true });
  return encodeCompletionMessageWithEncodedOutputs(message, outputs);
}

/**
 * `encodeCompletionMessage` of the message with these outputs, where the outputs are already
 * MessagePack (`encodeTensorMap`, as the worker stores them): they are spliced in as the last map
 * entry instead of being decoded and encoded again.
 */
export function encodeCompletionMessageWithEncodedOutputs(
  message: Omit<CompletionMessage, 'outputs'>,
  outputs: Uint8Array,
): Uint8Array {
  const head = encodeCompletionMessage(message);
  const header = head[0] ?? 0;
  // A fixmap with room for one more entry; the message has at most 11, so this always holds.
  if (header < 0x80 || header >= 0x8f) {
    return encodeCompletionMessage({ ...message, outputs: decodeTensorMap(outputs) });
  }
  const bytes = new Uint8Array(head.byteLength + OUTPUTS_KEY.byteLength + outputs.byteLength);
  bytes.set(head, 0);
  bytes[0] = header + 1;
  bytes.set(OUTPUTS_KEY, head.byteLength);
  bytes.set(outputs, head.byteLength + OUTPUTS_KEY.byteLength);
  return bytes;
}

export function decodeCompletionMessage(
  bytes: Uint8Array,
  format: WireFormat = 'msgpack',
): CompletionMessage {
  return decodeTrusted('completion message', bytes, format, (value) => {
    const wire = value as Record<string, unknown>;
    if (typeof wire.id !== 'string' || typeof wire.status !== 'string')
      throw new Error('missing id or status');
    const message = { ...wire } as unknown as CompletionMessage;
    if (wire.outputs !== undefined)
      message.outputs = parseTensorMap(wire.outputs, 'outputs', format, TRUSTED_LIMITS);
    return message;
  });
}

/**
 * The completion message without its outputs decoded: enough to tell which request ended and how
 * (`outputs` absent even when the message has them). For a waiter that answers with the message's
 * bytes (`encodeRecordFromCompletionMessage`), decoding the outputs into typed arrays is wasted.
 */
export function decodeCompletionHead(bytes: Uint8Array): Omit<CompletionMessage, 'outputs'> {
  return decodeTrusted('completion message', bytes, 'msgpack', (value) => {
    const wire = value as Record<string, unknown>;
    if (typeof wire.id !== 'string' || typeof wire.status !== 'string')
      throw new Error('missing id or status');
    const { outputs: _outputs, ...head } = wire;
    return head as unknown as Omit<CompletionMessage, 'outputs'>;
  });
}

/**
 * The MessagePack request record of a request whose end this message announces, given what the
 * message does not carry (`createdAt`, `metadata`): every field of the message is a record field
 * in the same wire form, so the record is the message's map with these entries added, and its
 * outputs are copied as bytes instead of being decoded and encoded again. For a record with no
 * `coalesced` flag (a leader: a follower's record says it is one).
 */
export function encodeRecordFromCompletionMessage(
  message: Uint8Array,
  extra: { createdAt: string; metadata?: Record<string, unknown> },
): Uint8Array {
  const header = message[0] ?? 0;
  const added: Record<string, unknown> = { createdAt: extra.createdAt };
  if (extra.metadata !== undefined) added.metadata = withoutUndefined(extra.metadata);
  const entries = Object.keys(added).length;
  // Spliced only into a fixmap with room for the extra entries (a message has at most 11 entries);
  // any other header is decoded and encoded again.
  if ((header & 0xf0) !== 0x80 || (header & 0x0f) + entries > 0x0f) {
    const { outputs, ...head } = decodeCompletionMessage(message);
    return encodeRecord(
      {
        ...head,
        createdAt: extra.createdAt,
        ...(outputs === undefined ? {} : { outputs }),
        ...(extra.metadata === undefined ? {} : { metadata: extra.metadata }),
      },
      'msgpack',
    );
  }
  // The added entries, packed as a map of their own (a one-byte fixmap header, then the entries).
  const tail = packStandard(added);
  const bytes = new Uint8Array(message.byteLength + tail.byteLength - 1);
  bytes.set(message, 0);
  bytes[0] = header + entries;
  bytes.set(tail.subarray(1), message.byteLength);
  return bytes;
}

const ID_KEY = [0xa2, 0x69, 0x64]; // fixstr "id"

/**
 * The same MessagePack completion message for another request: coalesced followers get the
 * leader's message with their own id, without re-encoding the outputs.
 */
export function withCompletionMessageId(bytes: Uint8Array, id: string): Uint8Array {
  const header = bytes[0];
  const mapHeaderLength =
    header !== undefined && header >= 0x80 && header <= 0x8f
      ? 1
      : header === 0xde
        ? 3
        : header === 0xdf
          ? 5
          : 0;
  const keyEnd = mapHeaderLength + ID_KEY.length;
  if (mapHeaderLength === 0 || ID_KEY.some((byte, i) => bytes[mapHeaderLength + i] !== byte)) {
    throw new Error('not a completion message: it must be a MessagePack map whose first key is "id"');
  }
  const stringHeader = bytes[keyEnd];
  let idEnd: number;
  if (stringHeader !== undefined && stringHeader >= 0xa0 && stringHeader <= 0xbf) {
    idEnd = keyEnd + 1 + (stringHeader - 0xa0);
  } else if (stringHeader === 0xd9) {
    idEnd = keyEnd + 2 + (bytes[keyEnd + 1] ?? 0);
  } else {
    throw new Error('not a completion message: its id is not a short string');
  }
  const encodedId = packStandard(id);
  const result = new Uint8Array(keyEnd + encodedId.byteLength + (bytes.byteLength - idEnd));
  result.set(bytes.subarray(0, keyEnd), 0);
  result.set(encodedId, keyEnd);
  result.set(bytes.subarray(idEnd), keyEnd + encodedId.byteLength);
  return result;
}

// ---------------------------------------------------------------------------------------------

function isPlainMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

function withoutUndefined(map: Record<string, unknown>): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(map)) if (value !== undefined) result[key] = value;
  return result;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
