import { readFileSync, writeFileSync } from 'node:fs';
import { loadConfig } from '@inferq/config';
import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { AnswerChecker } from './answer-check.ts';
import { buildOpenApiDocument } from './document.ts';

const COMMITTED = new URL('../../../../docs/openapi.json', import.meta.url);
const document = buildOpenApiDocument(loadConfig({}));

describe('the OpenAPI document', () => {
  it('is valid OpenAPI 3.1 by the specification’s own JSON Schema', async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(document));
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('is valid, every security scheme it names declared, with API and admin keys configured', async () => {
    const secured = buildOpenApiDocument(
      loadConfig({ API_KEYS: 'acme:key-a', ADMIN_KEY: 'admin-secret-0123456789', ADMIN_TENANTS: 'acme' }),
    );
    const result = await new Validator().validate(structuredClone(secured));
    expect(result.errors ?? []).toEqual([]);
    const declared = Object.keys((secured.components as { securitySchemes: object }).securitySchemes);
    const named = new Set<string>();
    const collect = (security: unknown): void => {
      for (const requirement of (security as Record<string, unknown>[] | undefined) ?? []) {
        for (const name of Object.keys(requirement)) named.add(name);
      }
    };
    collect(secured.security);
    for (const item of Object.values(
      secured.paths as Record<string, Record<string, { security?: unknown }>>,
    )) {
      for (const operation of Object.values(item)) collect(operation.security);
    }
    expect([...named].sort()).toEqual(['adminBasic', 'adminKey', 'apiKey']);
    for (const name of named) expect(declared).toContain(name);
  });

  it('has component schemas that compile as JSON Schema 2020-12, every $ref resolving', () => {
    const names = Object.keys((document.components as { schemas: object }).schemas);
    expect(names).toContain('RequestRecord');
    expect(() => new AnswerChecker(document).compileAll(names)).not.toThrow();
  });

  it('is the committed docs/openapi.json (run `npm run openapi` after changing the API)', () => {
    const text = `${JSON.stringify(document, null, 2)}\n`;
    if (process.env.UPDATE_OPENAPI === '1') writeFileSync(COMMITTED, text);
    expect(readFileSync(COMMITTED, 'utf8')).toBe(text);
  });
});

describe('AnswerChecker', () => {
  const checker = new AnswerChecker(document);
  const json = new Headers({ 'content-type': 'application/json; charset=utf-8' });
  const problemJson = new Headers({ 'content-type': 'application/problem+json' });
  const record = {
    id: 'r1',
    model: 'noop',
    version: 1,
    status: 'succeeded',
    cached: false,
    createdAt: '2026-12-05T00:00:00.000Z',
    timings: { queueMs: 1, batchWaitMs: 0, inferMs: 1, totalMs: 2 },
    outputs: { y: { dtype: 'float32', shape: [1], data: [1] } },
  };

  it('accepts a documented answer', () => {
    expect(
      checker.check({
        method: 'GET',
        path: '/v1/requests/r1',
        status: 200,
        headers: json,
        text: JSON.stringify(record),
      }),
    ).toEqual([]);
  });

  it('names a body that does not match its schema', () => {
    const text = JSON.stringify({ ...record, status: 'done' });
    expect(
      checker.check({ method: 'GET', path: '/v1/requests/r1', status: 200, headers: json, text }),
    ).toEqual(['GET /v1/requests/r1 → 200: RequestRecord/status must be equal to one of the allowed values']);
  });

  it('names an undocumented status, a missing required header and an undocumented operation', () => {
    expect(
      checker.check({ method: 'GET', path: '/v1/models', status: 418, headers: json, text: '{}' }),
    ).toEqual(['GET /v1/models → 418: status 418 is not documented for this operation']);
    const problem = JSON.stringify({
      type: 'https://inferq.dev/problems/queue-full',
      title: 'Queue full',
      status: 429,
      detail: 'full',
    });
    expect(
      checker.check({
        method: 'POST',
        path: '/v1/models/noop/infer',
        status: 429,
        headers: problemJson,
        text: problem,
      }),
    ).toEqual(['POST /v1/models/noop/infer → 429: no Retry-After header']);
    expect(
      checker.check({ method: 'PUT', path: '/v1/models', status: 200, headers: json, text: '{}' }),
    ).toEqual(['PUT /v1/models → 200: the document has no such operation']);
  });

  it('checks an unknown route’s error as a problem', () => {
    const problem = JSON.stringify({
      type: 'https://inferq.dev/problems/not-found',
      title: 'Not found',
      status: 404,
      detail: 'no route',
    });
    expect(
      checker.check({ method: 'GET', path: '/nowhere', status: 404, headers: problemJson, text: problem }),
    ).toEqual([]);
    expect(
      checker.check({ method: 'GET', path: '/nowhere', status: 404, headers: json, text: '{}' }),
    ).toEqual([
      "GET /nowhere → 404: content type 'application/json' is not documented (application/problem+json)",
    ]);
  });
});
