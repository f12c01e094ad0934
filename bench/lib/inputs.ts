import { packStandard } from '@inferq/protocol';
import { createRng } from './random.ts';

/** Elements stamped with the request's number, so that no two requests share a cache key. */
const STAMPED_ELEMENTS = 3;
/** float32 holds every integer below 2^24 exactly. */
const FLOAT32_EXACT_INTEGERS = 2 ** 24;

export interface TensorSource {
  /** Model input name, e.g. `x`. */
  inputName: string;
  shape: readonly number[];
  seed: number;
}

/**
 * Seeded random float32 inputs of one shape, each one distinct: a fixed random tensor with its first
 * elements overwritten by a running number (and a nonce drawn from the seed). Every call to
 * `nextTensor()` or `nextBody()` uses a new number, so the cache and coalescing never serve a
 * request that is meant to run the model.
 */
export class DistinctInputs {
  readonly inputName: string;
  readonly shape: readonly number[];
  private readonly template: Float32Array;
  private readonly nonce: number;
  private counter = 0;
  private readonly bodyTemplate: Buffer;
  private readonly dataOffset: number;

  constructor(source: TensorSource) {
    this.inputName = source.inputName;
    this.shape = [...source.shape];
    const count = source.shape.reduce((product, dim) => product * dim, 1);
    if (count < STAMPED_ELEMENTS) throw new RangeError(`a tensor of shape [${source.shape}] is too small`);
    const rng = createRng(source.seed);
    this.template = new Float32Array(count);
    for (let i = 0; i < count; i++) this.template[i] = rng();
    this.nonce = Math.floor(rng() * FLOAT32_EXACT_INTEGERS);
    // The body is encoded once; each request copies it and rewrites the stamped bytes in place.
    this.bodyTemplate = Buffer.from(this.encode(this.template));
    const templateBytes = Buffer.from(
      this.template.buffer,
      this.template.byteOffset,
      this.template.byteLength,
    );
    this.dataOffset = this.bodyTemplate.indexOf(templateBytes);
    if (this.dataOffset < 0) throw new Error('tensor bytes not found in the encoded body');
  }

  /** Requests handed out so far. */
  get issued(): number {
    return this.counter;
  }

  private stamp(target: Float32Array | Buffer, offset: number): void {
    const n = this.counter++;
    const values = [n % FLOAT32_EXACT_INTEGERS, Math.floor(n / FLOAT32_EXACT_INTEGERS), this.nonce];
    values.forEach((value, i) => {
      if (target instanceof Float32Array) target[i] = value;
      else target.writeFloatLE(value, offset + 4 * i);
    });
  }

  private encode(data: Float32Array): Uint8Array {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return packStandard({
      inputs: { [this.inputName]: { dtype: 'float32', shape: this.shape, data: bytes } },
    });
  }

  /** A new distinct tensor (its own copy). */
  nextTensor(): Float32Array {
    const tensor = this.template.slice();
    this.stamp(tensor, 0);
    return tensor;
  }

  /** The MessagePack body of `POST .../infer` for a new distinct input. */
  nextBody(): Buffer {
    const body = Buffer.allocUnsafe(this.bodyTemplate.length);
    this.bodyTemplate.copy(body);
    this.stamp(body, this.dataOffset);
    return body;
  }

  /** The MessagePack body of `POST .../infer:bulk`: `{ requests: [...] }` with `count` distinct inputs. */
  nextBulkBody(count: number): Buffer {
    const requests = Array.from({ length: count }, () => {
      const tensor = this.nextTensor();
      const data = new Uint8Array(tensor.buffer, tensor.byteOffset, tensor.byteLength);
      return { inputs: { [this.inputName]: { dtype: 'float32', shape: this.shape, data } } };
    });
    // packStandard's result views a shared buffer that the next call overwrites: keep a copy.
    return Buffer.from(packStandard({ requests }));
  }
}
