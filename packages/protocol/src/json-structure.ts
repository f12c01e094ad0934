/**
 * A pre-parse check of JSON bodies, the JSON counterpart of `findMessagePackProblem`'s limits:
 * JSON.parse builds every value before anything can be checked, and 16 MiB of `[{},{},...]` become
 * 5.6 million objects (over 300 MB of heap and seconds of a blocked event loop). Counting is done on
 * the UTF-8 bytes, without building anything.
 */
import { MAX_NESTING, type StructureLimits } from './msgpack.ts';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/**
 * Says why `bytes` (UTF-8 JSON text) nests deeper than MessagePack bodies may, or holds more values
 * or containers than `limits` allow; undefined when it does not. Values are counted as containers
 * plus separating commas plus one, which bounds the number of array elements and object members
 * from above. Malformed JSON is not reported here: JSON.parse says that better.
 */
export function findJsonStructureProblem(bytes: Uint8Array, limits: StructureLimits): string | undefined {
  const end = bytes.length;
  let depth = 0;
  let values = 1;
  let containers = 0;
  for (let i = 0; i < end; i++) {
    const byte = bytes[i] as number;
    if (byte === QUOTE) {
      i = closingQuote(bytes, i + 1);
      if (i < 0) return undefined;
    } else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
      if (++depth > MAX_NESTING) return `JSON nested deeper than ${MAX_NESTING} levels`;
      if (++containers > limits.maxContainers) {
        return `JSON holds more than ${limits.maxContainers} objects and arrays`;
      }
      if (++values > limits.maxValues) return `JSON holds more than ${limits.maxValues} values`;
    } else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
      if (depth > 0) depth--;
    } else if (byte === COMMA) {
      if (++values > limits.maxValues) return `JSON holds more than ${limits.maxValues} values`;
    }
  }
  return undefined;
}

/** Index of the quote that ends the string whose content starts at `from`; -1 when it never ends. */
function closingQuote(bytes: Uint8Array, from: number): number {
  let at = from;
  for (;;) {
    // indexOf is native: long strings (base64 tensor data) are skipped at memchr speed.
    const quote = bytes.indexOf(QUOTE, at);
    if (quote < 0) return -1;
    let backslashes = 0;
    while (quote - backslashes - 1 >= from && bytes[quote - backslashes - 1] === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return quote;
    at = quote + 1;
  }
}
