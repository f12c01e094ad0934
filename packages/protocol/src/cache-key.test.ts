import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { cacheKey } from './cache-key.ts';
import { decodeInferRequest } from './codec.ts';
import { packStandard } from './msgpack.ts';
import { tensorDataBytes, tensorDataToList } from './tensor.ts';
import { mapValues, sampleTensors, tensorToMsgpackWire, utf8 } from './test-support.ts';
import type { Tensor, TensorMap } from './types.ts';

const xData = new Float32Array([1, 2, 3, 4]);
const x: Tensor = { dtype: 'float32', shape: [2, 2], data: xData };
const mask: Tensor = { dtype: 'bool', shape: [2], data: new Uint8Array([1, 0]) };
const base = { model: 'noop', version: 1, inputs: { x, mask } };
const baseKey = cacheKey(base);

test('lowercase hex SHA-256', () => {
  expect(baseKey).toMatch(/^[0-9a-f]{64}$/);
});

describe('canonical: the same request gives the same key', () => {
  test('whatever the input insertion order', () => {
    expect(cacheKey({ ...base, inputs: { mask, x } })).toBe(baseKey);
  });

  test('whatever the order or repeats of the requested outputs', () => {
    expect(cacheKey({ ...base, outputs: ['b', 'a'] })).toBe(cacheKey({ ...base, outputs: ['a', 'b', 'a'] }));
  });

  test('whether the request came as JSON (lists or base64) or MessagePack', () => {
    const tensors = sampleTensors();
    const asMsgpack = decodeInferRequest(
      packStandard({ inputs: mapValues(tensors, tensorToMsgpackWire) }),
      'msgpack',
    ).inputs;
    const reversed: TensorMap = Object.fromEntries(Object.entries(tensors).reverse());
    const asJson = decodeInferRequest(
      utf8(
        JSON.stringify({
          inputs: mapValues(reversed, (t) => ({ dtype: t.dtype, shape: t.shape, data: tensorDataToList(t) })),
        }),
      ),
      'json',
    ).inputs;
    const key = (inputs: TensorMap) => cacheKey({ model: 'm', version: 3, outputs: ['y'], inputs });
    expect(key(asJson)).toBe(key(asMsgpack));
    expect(key(tensors)).toBe(key(asMsgpack));

    const b64 = Buffer.from(tensorDataBytes(xData)).toString('base64');
    const fromBase64 = decodeInferRequest(
      utf8(
        JSON.stringify({
          inputs: {
            mask: { dtype: 'bool', shape: [2], data: [true, false] },
            x: { dtype: 'float32', shape: [2, 2], data: { b64 } },
          },
        }),
      ),
      'json',
    );
    expect(cacheKey({ ...base, inputs: fromBase64.inputs })).toBe(baseKey);
  });
});

describe('different requests give different keys', () => {
  const variants: [string, Parameters<typeof cacheKey>[0]][] = [
    ['another model', { ...base, model: 'noop2' }],
    ['another version', { ...base, version: 2 }],
    ['outputs named', { ...base, outputs: ['y'] }],
    ['other outputs named', { ...base, outputs: ['z'] }],
    ['another input name', { ...base, inputs: { x2: x, mask } }],
    ['another element', { ...base, inputs: { mask, x: { ...x, data: new Float32Array([1, 2, 3, 5]) } } }],
    ['another shape, same bytes', { ...base, inputs: { mask, x: { ...x, shape: [4] } } }],
    ['another shape, same rank', { ...base, inputs: { mask, x: { ...x, shape: [1, 4] } } }],
    [
      'another dtype, same bytes',
      {
        ...base,
        inputs: { mask, x: { ...x, dtype: 'int32', data: new Int32Array(xData.buffer) } },
      },
    ],
    ['an input fewer', { ...base, inputs: { x } }],
    ['a tenant', { ...base, tenant: 'acme' }],
    ['another tenant', { ...base, tenant: 'globex' }],
    ['the tenant named like the model', { ...base, tenant: 'noop', model: '' }],
  ];

  test.each(variants)('%s', (_name, parts) => {
    expect(cacheKey(parts)).not.toBe(baseKey);
  });

  test('field boundaries cannot shift: names and strings are length-prefixed', () => {
    const strings = (data: string[]): TensorMap => ({ s: { dtype: 'string', shape: [data.length], data } });
    const key = (data: string[]) => cacheKey({ model: 'm', version: 1, inputs: strings(data) });
    expect(key(['ab', 'c'])).not.toBe(key(['a', 'bc']));
    expect(cacheKey({ model: 'ab', version: 1, outputs: ['c'], inputs: {} })).not.toBe(
      cacheKey({ model: 'a', version: 1, outputs: ['bc'], inputs: {} }),
    );
    expect(cacheKey({ ...base, outputs: [] })).not.toBe(baseKey);
    expect(cacheKey({ ...base, tenant: 'ab', model: 'c' })).not.toBe(
      cacheKey({ ...base, tenant: 'a', model: 'bc' }),
    );
  });

  test('the same tenant and request give the same key', () => {
    expect(cacheKey({ ...base, tenant: 'acme' })).toBe(cacheKey({ ...base, tenant: 'acme' }));
  });

  test('all distinct', () => {
    const keys = variants.map(([, parts]) => cacheKey(parts));
    expect(new Set([...keys, baseKey]).size).toBe(keys.length + 1);
  });
});

describe('the hashed layout', () => {
  const u64 = (value: number): Buffer => {
    const out = Buffer.alloc(8);
    out.writeBigUInt64LE(BigInt(value));
    return out;
  };
  const text = (value: string): Buffer => Buffer.concat([u64(Buffer.byteLength(value)), Buffer.from(value)]);

  test('is SHA-256 of the length-prefixed fields, in the documented order', () => {
    const floats = new Float32Array([1.5, -2]);
    const parts = {
      tenant: 'acme',
      model: 'ppocr-cls',
      version: 2,
      outputs: ['b', 'a'],
      inputs: {
        x: { dtype: 'float32', shape: [1, 2], data: floats },
        words: { dtype: 'string', shape: [2], data: ['héllo', ''] },
      } as TensorMap,
    };
    const layout = Buffer.concat([
      text('inferq/cache-key/v2'),
      u64(1),
      text('acme'),
      text('ppocr-cls'),
      u64(2),
      // outputs present, sorted and deduplicated
      u64(1),
      u64(2),
      text('a'),
      text('b'),
      // inputs in sorted name order
      u64(2),
      text('words'),
      text('string'),
      u64(1),
      u64(2),
      u64(2),
      text('héllo'),
      text(''),
      text('x'),
      text('float32'),
      u64(2),
      u64(1),
      u64(2),
      u64(8),
      Buffer.from(floats.buffer),
    ]);
    const key = cacheKey(parts);
    expect(key).toBe(createHash('sha256').update(layout).digest('hex'));
    // Pinned: a change to the layout must come with a new CACHE_KEY_DOMAIN.
    expect(key).toBe('009ebd784074788332bdc40864a210e765291abce2bb03aa435fce4555adde7c');
  });

  test('hashes data of any length the same way, whether gathered or fed directly', () => {
    for (const length of [0, 1, 4095, 4096, 4097, 10_000]) {
      const data = new Uint8Array(length).map((_, index) => index % 251);
      const name = `n${'é'.repeat(Math.floor(length / 2))}`;
      const layout = Buffer.concat([
        text('inferq/cache-key/v2'),
        u64(0),
        text('m'),
        u64(1),
        u64(0),
        u64(1),
        text(name),
        text('uint8'),
        u64(1),
        u64(length),
        u64(length),
        Buffer.from(data),
      ]);
      const key = cacheKey({
        model: 'm',
        version: 1,
        inputs: { [name]: { dtype: 'uint8', shape: [length], data } },
      });
      expect(key).toBe(createHash('sha256').update(layout).digest('hex'));
    }
  });
});
