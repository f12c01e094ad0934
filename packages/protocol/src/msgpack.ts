/**
 * Standard MessagePack only, in both directions. msgpackr's defaults are not standard (record
 * extensions, typed-array extension 0x74, `undefined` as ext 0), and its decoder understands every
 * extension it knows whatever the options say; so encoding uses a Packr with the extensions off, and
 * decoding first walks the bytes with `findMessagePackProblem`, which refuses any extension type,
 * non-string map keys, truncation and trailing bytes, before msgpackr builds the values.
 */
import { isUtf8 } from 'node:buffer';
import { Packr, Unpackr } from 'msgpackr';

const packr = new Packr({ useRecords: false, moreTypes: false, variableMapSize: true });

const unpackr = new Unpackr({
  useRecords: false,
  mapsAsObjects: true,
  // Integers beyond 2^53 arrive as bigint (never silently rounded); smaller ones as numbers.
  // msgpackr supports 'auto' (unpack.js) but its type declarations omit it.
  int64AsType: 'auto' as 'bigint',
});

/** Deeper than any message of ours; keeps a hostile body from exhausting the stack. */
export const MAX_NESTING = 32;

/**
 * Caps on how many values a body may build, checked on the raw bytes before anything is built:
 * a 16 MiB body of one-byte empty maps would otherwise become millions of objects (hundreds of MB).
 */
export interface StructureLimits {
  /** Values of any kind, map keys included. */
  maxValues: number;
  /** Maps and arrays, empty ones included. */
  maxContainers: number;
}

/**
 * Encodes `value` as standard MessagePack: objects as maps, Uint8Array/Buffer as `bin`.
 * The caller must not put `undefined` anywhere in `value` (msgpackr would write an extension), nor
 * any typed array other than Uint8Array.
 *
 * The result is a view into msgpackr's shared output buffer: read it, send it, store it, but do not
 * transfer or detach its `.buffer`.
 */
export function packStandard(value: unknown): Uint8Array {
  return packr.pack(value);
}

/**
 * Decodes one standard MessagePack value that spans all of `bytes`. Maps become plain objects,
 * `bin` becomes a Buffer that is a view over `bytes` (no copy). Throws an `Error` whose message
 * says what is wrong and at which byte.
 */
/**
 * Decodes MessagePack this system wrote itself (payloads, records, completion messages): the
 * structural check that guards client input is skipped, it is pure cost on the hot path.
 */
export function unpackTrusted(bytes: Uint8Array): unknown {
  return unpackr.unpack(bytes);
}

export function unpackStandard(bytes: Uint8Array, limits?: StructureLimits): unknown {
  const problem = findMessagePackProblem(bytes, limits);
  if (problem !== undefined) throw new Error(problem);
  return unpackr.unpack(bytes);
}

/**
 * Walks the MessagePack structure in `bytes` without building any values, and says what makes it
 * something other than exactly one standard, complete MessagePack value with string map keys.
 * Returns undefined when it is fine. Skipping `bin` and `str` payloads is O(1), so this costs little
 * next to decoding. With `limits`, also refuses more values or containers than they allow.
 */
export function findMessagePackProblem(bytes: Uint8Array, limits?: StructureLimits): string | undefined {
  const end = bytes.length;
  if (end === 0) return 'empty MessagePack input';
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // For each open container: how many values it still holds (maps count keys and values) and
  // whether it is a map, so that keys can be told from values.
  const remaining: number[] = [];
  const isMap: boolean[] = [];
  let position = 0;
  let values = 0;
  let containers = 0;
  const maxValues = limits?.maxValues ?? Number.POSITIVE_INFINITY;
  const maxContainers = limits?.maxContainers ?? Number.POSITIVE_INFINITY;

  const truncated = (at: number, needed: number) =>
    `truncated MessagePack: the value at byte ${at} needs ${needed} bytes, only ${end - at} remain`;

  for (;;) {
    const depth = remaining.length;
    const atKey = depth > 0 && isMap[depth - 1] === true && (remaining[depth - 1] ?? 0) % 2 === 0;
    if (position >= end) return truncated(position, 1);
    const start = position;
    const token = bytes[position] as number;
    let headerLength = 1;
    let payloadLength = 0;
    let containerItems = -1;
    let containerIsMap = false;
    let isString = false;

    if (token <= 0x7f || token >= 0xe0) {
      // positive or negative fixint
    } else if (token <= 0x8f) {
      containerItems = (token - 0x80) * 2;
      containerIsMap = true;
    } else if (token <= 0x9f) {
      containerItems = token - 0x90;
    } else if (token <= 0xbf) {
      payloadLength = token - 0xa0;
      isString = true;
    } else {
      const lengthField = (size: 1 | 2 | 4): number | undefined => {
        headerLength = 1 + size;
        if (start + headerLength > end) return undefined;
        if (size === 1) return bytes[start + 1] as number;
        if (size === 2) return view.getUint16(start + 1);
        return view.getUint32(start + 1);
      };
      let length: number | undefined = 0;
      switch (token) {
        case 0xc0: // nil
        case 0xc2: // false
        case 0xc3: // true
          break;
        case 0xc1:
          return `invalid MessagePack: byte 0xc1 (never used) at byte ${start}`;
        case 0xc4:
        case 0xc5:
        case 0xc6:
          length = lengthField(token === 0xc4 ? 1 : token === 0xc5 ? 2 : 4);
          payloadLength = length ?? 0;
          break;
        case 0xc7:
        case 0xc8:
        case 0xc9:
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
          return `MessagePack extension type (0x${token.toString(16)}) at byte ${start} is not accepted; only standard types are`;
        case 0xca:
          payloadLength = 4;
          break;
        case 0xcb:
          payloadLength = 8;
          break;
        case 0xcc:
        case 0xd0:
          payloadLength = 1;
          break;
        case 0xcd:
        case 0xd1:
          payloadLength = 2;
          break;
        case 0xce:
        case 0xd2:
          payloadLength = 4;
          break;
        case 0xcf:
        case 0xd3:
          payloadLength = 8;
          break;
        case 0xd9:
        case 0xda:
        case 0xdb:
          length = lengthField(token === 0xd9 ? 1 : token === 0xda ? 2 : 4);
          payloadLength = length ?? 0;
          isString = true;
          break;
        case 0xdc:
        case 0xdd:
          length = lengthField(token === 0xdc ? 2 : 4);
          containerItems = length ?? 0;
          break;
        case 0xde:
        case 0xdf:
          length = lengthField(token === 0xde ? 2 : 4);
          containerItems = (length ?? 0) * 2;
          containerIsMap = true;
          break;
      }
      if (length === undefined) return truncated(start, headerLength);
    }

    if (atKey && !isString) return `MessagePack map key at byte ${start} is not a string`;
    const next = start + headerLength + payloadLength;
    if (next > end) return truncated(start, headerLength + payloadLength);
    // msgpackr turns invalid UTF-8 into U+FFFD: a client's string would change without a word (JSON
    // bodies are decoded strictly). Only client input (with limits) pays for the check.
    if (isString && limits !== undefined && !isUtf8String(bytes, start + headerLength, next)) {
      return `MessagePack string at byte ${start} is not valid UTF-8`;
    }
    position = next;

    if (depth > 0) remaining[depth - 1] = (remaining[depth - 1] ?? 0) - 1;
    if (++values > maxValues) return `MessagePack holds more than ${maxValues} values`;
    if (containerItems >= 0 && ++containers > maxContainers) {
      return `MessagePack holds more than ${maxContainers} maps and arrays`;
    }
    if (containerItems > 0) {
      // Every value takes at least one byte: a count beyond the bytes left cannot be complete.
      if (containerItems > end - position) return truncated(start, headerLength + containerItems);
      if (depth >= MAX_NESTING) return `MessagePack nested deeper than ${MAX_NESTING} levels`;
      remaining.push(containerItems);
      isMap.push(containerIsMap);
    }
    while (remaining.length > 0 && remaining[remaining.length - 1] === 0) {
      remaining.pop();
      isMap.pop();
    }
    if (remaining.length === 0) {
      return position === end
        ? undefined
        : `trailing bytes after the MessagePack value: ${end - position} bytes from byte ${position}`;
    }
  }
}

/** Whether bytes[from, to) are valid UTF-8: short ASCII strings (names, most data) are settled here. */
function isUtf8String(bytes: Uint8Array, from: number, to: number): boolean {
  if (to - from <= 64) {
    let ascii = true;
    for (let i = from; i < to && ascii; i++) ascii = (bytes[i] as number) < 0x80;
    if (ascii) return true;
  }
  return isUtf8(bytes.subarray(from, to));
}
