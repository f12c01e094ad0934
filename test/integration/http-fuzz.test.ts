/**
 * Every route, method, header and path parameter fuzzed over real HTTP against the in-process API
 * and a real Redis (fast-check, fixed seed: the same cases each run). Property: no answer is a 5xx
 * other than a 503 with Retry-After, and every error is problem+json with exactly its four fields.
 * The body-level properties are in hostile-input.test.ts (here and in packages/protocol).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { packStandard } from '@inferq/protocol';
import { loadModelRepository, type ModelRepository } from '@inferq/repository';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  mutate,
  mutation,
  requestFor,
  SIGNATURES,
  toJson,
  wireValue,
} from '../../packages/protocol/src/hostile-arbitraries.ts';
import { writeAffineModel, writeIdentityModel } from '../helpers/onnx-models.ts';
import { startTestApi, type TestApi } from '../helpers/test-api.ts';

const KEY = 'key-a';
let modelDir: string;
let repository: ModelRepository;
let api: TestApi;
/** A request that exists (queued): reads, waits, events and cancels of it get past the 404. */
let knownId: string;

const affineJson = { inputs: { x: { dtype: 'float32', shape: [1, 4], data: [1, 2, 3, 4] } } };
const affineMsgpack = packStandard({
  inputs: {
    x: { dtype: 'float32', shape: [1, 4], data: new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer) },
  },
});

beforeAll(async () => {
  modelDir = mkdtempSync(join(tmpdir(), 'inferq-http-fuzz-'));
  writeAffineModel(join(modelDir, 'affine', '1', 'model.onnx'), { scale: 2, bias: 1 });
  writeIdentityModel(join(modelDir, 'strings', '1', 'model.onnx'), 'string', []);
  repository = await loadModelRepository(modelDir);
  api = await startTestApi({
    redisUrl: inject('redisUrl'),
    repository,
    modelRepository: modelDir,
    // Small caps so that every one is reached; waits of at most 1 s keep the run short.
    env: { API_KEYS: `acme:${KEY}`, MAX_BODY_BYTES: '65536', MAX_WAIT_SECONDS: '1', MAX_INPUTS: '3' },
  });
  const response = await api.fetch('/v1/models/affine/infer', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ ...affineJson, cache: false }),
  });
  expect(response.status).toBe(202);
  knownId = ((await response.json()) as { id: string }).id;
});

afterAll(async () => {
  await api?.close();
  rmSync(modelDir, { recursive: true, force: true });
});

/** Strings that have broken path and header handling elsewhere: encodings, dots, controls, length. */
const oddText = fc.oneof(
  fc.constantFrom(
    '',
    '%',
    '%zz',
    '%00',
    '%2F',
    '..',
    '.',
    'a/b',
    ' ',
    '%20',
    '\u00e9',
    '%C3%A9',
    '%E9',
    '~',
    ':',
  ),
  fc.string({ maxLength: 12 }).map(encodeURIComponent),
  fc.string({ unit: 'binary', maxLength: 12 }).map(encodeURIComponent),
  fc.integer({ min: 1, max: 20_000 }).map((n) => 'm'.repeat(n)),
);
const model = fc.oneof({ weight: 4, arbitrary: fc.constant('affine') }, fc.constant('strings'), oddText);
const version = fc.oneof(
  fc.constantFrom('1', '01', '0', '2', '-1', '1e3', '999999999', '9999999999', 'x'),
  oddText,
);
const requestId = fc.oneof(
  { weight: 3, arbitrary: fc.constant('known') },
  fc.constant('AAAAAAAAAAAAAAAAAAAAAA'),
  oddText,
);
const query = fc.constantFrom(
  '',
  '?wait=0',
  '?wait=1',
  '?wait=abc',
  '?wait=1&wait=2',
  '?wait[x]=1',
  '?a=%zz',
  '?wait=-1',
  '?',
);

const path = fc.oneof(
  fc.constantFrom('/healthz', '/readyz', '/metrics', '/v1/models', '/v1', '/', '/v1/requests', '/nope'),
  model.map((m) => `/v1/models/${m}`),
  fc
    .tuple(model, fc.constantFrom('infer', 'infer:bulk', 'infer:x', 'infer/'))
    .map(([m, r]) => `/v1/models/${m}/${r}`),
  fc
    .tuple(model, version, fc.constantFrom('infer', 'infer:bulk'))
    .map(([m, v, r]) => `/v1/models/${m}/versions/${v}/${r}`),
  fc.tuple(requestId, fc.constantFrom('', '/events', '/x')).map(([id, tail]) => `/v1/requests/${id}${tail}`),
);

const method = fc.oneof(
  { weight: 3, arbitrary: fc.constant('POST') },
  { weight: 2, arbitrary: fc.constant('GET') },
  fc.constantFrom('DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS'),
);

const optional = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { nil: undefined });
const headers = fc.record({
  authorization: fc.oneof(
    { weight: 6, arbitrary: fc.constant(`Bearer ${KEY}`) },
    fc.constantFrom(
      undefined,
      'Bearer wrong',
      'Basic a2V5LWE=',
      'Bearer',
      `bearer  ${KEY}`,
      'x'.repeat(5000),
    ),
  ),
  'content-type': optional(
    fc.constantFrom(
      'application/json',
      'application/msgpack',
      'application/x-msgpack',
      'application/json; charset=utf-8',
      'application/json; charset=latin1',
      'application/json; charset=utf-16',
      'application/problem+json',
      'text/plain',
      'multipart/form-data; boundary=x',
      ';;;',
      'application/json; q',
    ),
  ),
  accept: optional(
    fc.constantFrom(
      'application/msgpack',
      'application/json',
      '*/*',
      'text/html',
      'application/msgpack;q=0',
      ',,;q=x',
    ),
  ),
  'content-encoding': optional(
    fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'compress', 'gzip, br', 'x'),
  ),
  prefer: optional(
    fc.constantFrom('wait=0', 'wait=1', 'wait=abc', 'wait=99999999999', 'respond-async, wait=1', ';'),
  ),
  'idempotency-key': optional(
    fc.oneof(
      fc.string({ unit: fc.constantFrom(...'abc-_.:"'), minLength: 1, maxLength: 12 }),
      fc.constantFrom('', '""', 'x'.repeat(300), 'has space', '\u00e9'),
    ),
  ),
  // Any byte a header value may hold (fetch refuses control characters).
  'x-request-id': optional(
    fc.string({
      unit: fc
        .integer({ min: 0x20, max: 0xff })
        .map((code) => String.fromCharCode(code === 0x7f ? 0x20 : code)),
      maxLength: 20,
    }),
  ),
});

const body = fc.oneof(
  fc.constant(undefined),
  fc.constant(Buffer.from(JSON.stringify({ ...affineJson, cache: false }))),
  fc.constant(Buffer.from(affineMsgpack)),
  fc.constant(Buffer.from(JSON.stringify({ requests: [affineJson, affineJson] }))),
  fc.constant(gzipSync(JSON.stringify(affineJson))),
  fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
  fc.jsonValue().map((value) => Buffer.from(toJson(value))),
  wireValue.map((value) => Buffer.from(packStandard(value))),
  requestFor('json', SIGNATURES.slice(0, 1)).map((value) => Buffer.from(toJson(value))),
  fc
    .tuple(requestFor('msgpack'), fc.array(mutation, { minLength: 1, maxLength: 2 }))
    .map(([value, m]) => Buffer.from(mutate(Uint8Array.from(packStandard(value)), m))),
  fc.integer({ min: 65_000, max: 70_000 }).map((n) => Buffer.alloc(n, 0x20)),
);

/** Submissions whose content type, encoding and key are right, so that the body decides the answer. */
const coherentSubmit = fc
  .tuple(
    fc.constantFrom(
      '/v1/models/affine/infer',
      '/v1/models/affine/versions/1/infer',
      '/v1/models/affine/infer:bulk',
    ),
    fc.oneof(
      fc.constant({
        type: 'application/json',
        bytes: Buffer.from(JSON.stringify({ ...affineJson, cache: false })),
      }),
      fc.constant({ type: 'application/msgpack', bytes: Buffer.from(affineMsgpack) }),
      // Over MAX_BODY_BYTES (64 KiB here), also once inflated.
      fc.constant({
        type: 'application/json',
        bytes: Buffer.from(JSON.stringify(affineJson) + ' '.repeat(70_000)),
      }),
      requestFor('json', SIGNATURES.slice(0, 1)).map((value) => ({
        type: 'application/json',
        bytes: Buffer.from(toJson(value)),
      })),
      requestFor('msgpack', SIGNATURES.slice(0, 1)).map((value) => ({
        type: 'application/msgpack',
        bytes: Buffer.from(packStandard(value)),
      })),
    ),
    fc.boolean(),
    headers,
  )
  .map(([route, { type, bytes }, gzip, sent]) => {
    const bulk = route.endsWith(':bulk');
    const value = type === 'application/json' ? JSON.parse(bytes.toString('utf8')) : undefined;
    let payload: Buffer = bytes;
    if (bulk) {
      payload =
        value === undefined
          ? Buffer.concat([Buffer.from([0x81, 0xa8, ...Buffer.from('requests'), 0x91]), bytes])
          : Buffer.from(JSON.stringify({ requests: [value] }));
    }
    return {
      verb: 'POST',
      url: route,
      sent: {
        ...sent,
        authorization: `Bearer ${KEY}`,
        'content-type': type,
        'content-encoding': gzip ? 'gzip' : undefined,
      },
      payload: gzip ? gzipSync(payload) : payload,
    };
  });

const anyRequest = fc
  .tuple(method, path, query, headers, body)
  .map(([verb, route, search, sent, payload]) => ({ verb, url: route + search, sent, payload }));

describe('every route, method, header and path parameter', () => {
  it('never answers a 5xx but a 503 with Retry-After, and every error is problem+json', async () => {
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(fc.oneof({ weight: 3, arbitrary: anyRequest }, coherentSubmit), async (request) => {
        const { verb, sent, payload } = request;
        const url = request.url.replace('/known', `/${knownId}`);
        const init: RequestInit = {
          method: verb,
          headers: Object.fromEntries(
            Object.entries(sent).filter(([, value]) => value !== undefined),
          ) as Record<string, string>,
        };
        if (payload !== undefined && verb !== 'GET' && verb !== 'HEAD') init.body = payload;
        const response = await api.fetch(url, init);
        const status = response.status;
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        const what = `${verb} ${url.slice(0, 200)} -> ${status}`;
        if (response.headers.get('content-type')?.startsWith('text/event-stream')) {
          // An event stream of a queued request stays open: its headers are the answer.
          await response.body?.cancel();
          expect(status, what).toBe(200);
          return;
        }
        const bytes = Buffer.from(await response.arrayBuffer());
        expect(status >= 500 && status !== 503, what).toBe(false);
        if (status === 503) expect(response.headers.get('retry-after'), what).toMatch(/^\d+$/);
        // /readyz's 503 is its documented readiness report (JSON: what is missing), not an error.
        if (status < 400 || (status === 503 && url.startsWith('/readyz'))) return;
        expect(response.headers.get('content-type'), what).toMatch(/^application\/problem\+json/);
        if (verb === 'HEAD') return;
        const problem = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
        expect(Object.keys(problem).sort(), what).toEqual(['detail', 'status', 'title', 'type']);
        expect(problem.status, what).toBe(status);
      }),
      { numRuns: 400, seed: 20_261_211, endOnFailure: true },
    );
    // The property reached past the front door: accepted submissions, reads and refusals of each kind.
    for (const status of [200, 202, 400, 401, 404, 413, 415, 422]) {
      expect(
        statuses.get(status) ?? 0,
        `status ${status} in ${JSON.stringify([...statuses])}`,
      ).toBeGreaterThan(0);
    }
  });
});
