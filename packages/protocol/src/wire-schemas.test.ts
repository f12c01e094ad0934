import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeInferRequest } from './codec.ts';
import { requestFor, toJson } from './hostile-arbitraries.ts';
import { WireInferRequest } from './wire-schemas.ts';

const accepts = (body: Uint8Array): boolean => {
  try {
    decodeInferRequest(body, 'json');
    return true;
  } catch {
    return false;
  }
};

describe('WireInferRequest, the documented request body', () => {
  it('accepts every JSON body decodeInferRequest accepts (the document never refuses a valid request)', () => {
    let accepted = 0;
    fc.assert(
      fc.property(requestFor('json'), (request) => {
        const body = toJson(request);
        if (!accepts(body)) return;
        accepted++;
        expect(WireInferRequest.safeParse(JSON.parse(new TextDecoder().decode(body))).success).toBe(true);
      }),
      { numRuns: 2000 },
    );
    // The property would hold vacuously if nothing were accepted.
    expect(accepted).toBeGreaterThan(100);
  });

  const tensor = { dtype: 'float32', shape: [1, 2], data: [1, 2] };
  it.each([
    ['an unknown envelope field', { inputs: { x: tensor }, extra: 1 }],
    ['no inputs', { outputs: ['y'] }],
    ['an unknown tensor field', { inputs: { x: { ...tensor, layout: 'nchw' } } }],
    ['a tensor without data', { inputs: { x: { dtype: 'float32', shape: [1] } } }],
    ['an unknown dtype', { inputs: { x: { ...tensor, dtype: 'float8' } } }],
    ['a negative dimension', { inputs: { x: { ...tensor, shape: [-1, 2] } } }],
    ['a fractional dimension', { inputs: { x: { ...tensor, shape: [1.5] } } }],
    ['b64 that is not a string', { inputs: { x: { ...tensor, data: { b64: 3 } } } }],
    ['data that is a string', { inputs: { x: { ...tensor, data: 'AAAA' } } }],
    ['a zero timeout', { inputs: { x: tensor }, timeoutMs: 0 }],
    ['a fractional priority', { inputs: { x: tensor }, priority: 0.5 }],
    ['cache that is not a boolean', { inputs: { x: tensor }, cache: 'no' }],
    ['an empty outputs list', { inputs: { x: tensor }, outputs: [] }],
    ['a nested metadata value', { inputs: { x: tensor }, metadata: { a: { b: 1 } } }],
    ['a callback with an unknown field', { inputs: { x: tensor }, callback: { topic: 'x' } }],
  ])('refuses %s, as the API does', (_what, request) => {
    expect(accepts(new TextEncoder().encode(JSON.stringify(request)))).toBe(false);
    expect(WireInferRequest.safeParse(request).success).toBe(false);
  });
});
