import { Buffer } from 'node:buffer';
import { createHash, type Hash } from 'node:crypto';
import { tensorDataBytes } from './tensor.ts';
import type { TensorData, TensorMap } from './types.ts';

/** Bumped whenever the hashed layout changes, so old cache entries are simply never hit again. */
const CACHE_KEY_DOMAIN = 'inferq/cache-key/v2';

export interface CacheKeyParts {
  /**
   * The tenant whose requests may share this result. Results are never shared across tenants:
   * a `cached` or `coalesced` answer would tell one tenant what another sent, and hand it a result
   * computed for someone else (docs/security.md). Absent: shared by everyone (tools, tests).
   */
  tenant?: string;
  model: string;
  version: number;
  /** Requested outputs; absent means all of them. Order and repeats do not matter. */
  outputs?: string[];
  inputs: TensorMap;
}

/**
 * Lowercase hex SHA-256 identifying the result of running `inputs` through one model version for
 * one tenant.
 * Inputs are hashed in sorted name order, and every variable-length field carries its length, so the
 * hashed bytes read back unambiguously: two different requests cannot produce the same bytes, and the
 * same request gives the same key whatever wire format or map order it arrived in.
 */
export function cacheKey(parts: CacheKeyParts): string {
  const hasher = new LengthPrefixedHasher();
  hasher.text(CACHE_KEY_DOMAIN);
  if (parts.tenant === undefined) {
    hasher.unsigned(0);
  } else {
    hasher.unsigned(1);
    hasher.text(parts.tenant);
  }
  hasher.text(parts.model);
  hasher.unsigned(parts.version);
  if (parts.outputs === undefined) {
    hasher.unsigned(0);
  } else {
    const outputs = [...new Set(parts.outputs)].sort();
    hasher.unsigned(1);
    hasher.unsigned(outputs.length);
    for (const name of outputs) hasher.text(name);
  }
  const names = Object.keys(parts.inputs).sort();
  hasher.unsigned(names.length);
  for (const name of names) {
    const tensor = parts.inputs[name];
    if (tensor === undefined) continue;
    hasher.text(name);
    hasher.text(tensor.dtype);
    hasher.unsigned(tensor.shape.length);
    for (const dim of tensor.shape) hasher.unsigned(dim);
    if (tensor.dtype === 'string') {
      const strings = tensor.data as string[];
      hasher.unsigned(strings.length);
      for (const text of strings) hasher.text(text);
    } else {
      hasher.bytes(tensorDataBytes(tensor.data as Exclude<TensorData, string[]>));
    }
  }
  return hasher.digest();
}

/** Data at least this long goes to the hash as it is; shorter fields are gathered and hashed at once. */
const DIRECT_UPDATE_BYTES = 4096;

/**
 * Feeds the length-prefixed layout to SHA-256. The small fields are written into one scratch buffer
 * and hashed together: one `update` per field (a call into C++ each) cost more than the hashing
 * itself for a typical request.
 */
class LengthPrefixedHasher {
  readonly #hash: Hash = createHash('sha256');
  #scratch = Buffer.allocUnsafe(512);
  #used = 0;

  unsigned(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`cache key fields must be non-negative integers, got ${value}`);
    }
    this.#reserve(8);
    // Little-endian u64 from two u32 halves: a safe integer fits in 53 bits.
    this.#scratch.writeUInt32LE(value % 0x1_0000_0000, this.#used);
    this.#scratch.writeUInt32LE(Math.floor(value / 0x1_0000_0000), this.#used + 4);
    this.#used += 8;
  }

  bytes(value: Uint8Array): void {
    this.unsigned(value.byteLength);
    if (value.byteLength >= DIRECT_UPDATE_BYTES) {
      this.#flush();
      this.#hash.update(value);
      return;
    }
    this.#reserve(value.byteLength);
    this.#scratch.set(value, this.#used);
    this.#used += value.byteLength;
  }

  text(value: string): void {
    const length = Buffer.byteLength(value);
    if (length >= DIRECT_UPDATE_BYTES) {
      this.bytes(Buffer.from(value));
      return;
    }
    this.unsigned(length);
    this.#reserve(length);
    this.#used += this.#scratch.write(value, this.#used, 'utf8');
  }

  digest(): string {
    this.#flush();
    return this.#hash.digest('hex');
  }

  #reserve(bytes: number): void {
    if (this.#used + bytes <= this.#scratch.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.#scratch.length * 2, this.#used + bytes));
    this.#scratch.copy(grown, 0, 0, this.#used);
    this.#scratch = grown;
  }

  #flush(): void {
    if (this.#used === 0) return;
    this.#hash.update(this.#scratch.subarray(0, this.#used));
    this.#used = 0;
  }
}
