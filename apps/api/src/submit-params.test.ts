import { cacheKey, type InferRequestBody, type ModelSignature, type TensorMap } from '@inferq/protocol';
import { describe, expect, it } from 'vitest';
import type { Servable } from './catalog.ts';
import { submitParams } from './submit-params.ts';
import { servable } from './test-support.ts';

const signature: ModelSignature = {
  inputs: [{ name: 'x', dtype: 'float32', shape: [-1, 2] }],
  outputs: [{ name: 'y', dtype: 'float32', shape: [-1, 2] }],
};
const inputs: TensorMap = { x: { dtype: 'float32', shape: [1, 2], data: new Float32Array([1, 2]) } };

function model(cacheEnabled: boolean): Servable {
  return servable(signature, { maxBatchSize: 4, cache: { enabled: cacheEnabled } }, { version: 3 });
}

describe('submitParams: the cache key', () => {
  it('is the SHA-256 cache key of tenant, model, version and inputs when the request uses the cache', () => {
    const body: InferRequestBody = { inputs };
    const params = submitParams('id1', model(true), body, 'acme', 0, undefined);
    expect(params.useCache).toBe(true);
    expect(params.cacheKey).toBe(cacheKey({ tenant: 'acme', model: 'm', version: 3, inputs }));
  });

  it('is not computed for a request that opts out of the cache, nor for a model with its cache off', () => {
    const optedOut = submitParams('id2', model(true), { inputs, cache: false }, 'acme', 0, undefined);
    expect(optedOut.useCache).toBe(false);
    expect(optedOut.cacheKey).toBe('');
    const cacheOff = submitParams('id3', model(false), { inputs }, 'acme', 0, undefined);
    expect(cacheOff.useCache).toBe(false);
    expect(cacheOff.cacheKey).toBe('');
  });
});
