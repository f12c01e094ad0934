/**
 * The OpenAPI document as the API serves it (`/openapi.json`, `/docs`), and the suite's own check
 * of every answer against it (test/helpers/openapi-answers.ts): shown to be active by a server that
 * answers off the document.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '@inferq/config';
import { loadModelRepository, type ModelRepository } from '@inferq/repository';
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildOpenApiDocument } from '../../apps/api/src/openapi/document.ts';
import { writeAffineModel } from '../helpers/onnx-models.ts';
import { checkAnswersOf } from '../helpers/openapi-answers.ts';
import { startTestApi, type TestApi } from '../helpers/test-api.ts';

let modelDir: string;
let repository: ModelRepository;
let api: TestApi;

beforeAll(async () => {
  modelDir = mkdtempSync(join(tmpdir(), 'inferq-openapi-'));
  writeAffineModel(join(modelDir, 'affine', '1', 'model.onnx'), { scale: 2, bias: 1 });
  repository = await loadModelRepository(modelDir);
  api = await startTestApi({
    redisUrl: inject('redisUrl'),
    repository,
    modelRepository: modelDir,
    env: { API_KEYS: 'acme:key-of-acme', MAX_BULK_REQUESTS: '7' },
  });
});

afterAll(async () => {
  await api?.close();
  rmSync(modelDir, { recursive: true, force: true });
});

describe('GET /openapi.json', () => {
  it('serves a valid OpenAPI 3.1 document built from the API’s own configuration', async () => {
    const response = await api.fetch('/openapi.json');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const document = (await response.json()) as Record<string, unknown>;
    expect(document).toEqual(buildOpenApiDocument(api.config));
    // The deployment's own caps and key requirement.
    expect(document.security).toEqual([{ apiKey: [] }]);
    const schemas = (
      document.components as { schemas: Record<string, { properties?: Record<string, unknown> }> }
    ).schemas;
    expect(schemas.BulkInferRequest?.properties?.requests).toMatchObject({ minItems: 1, maxItems: 7 });
    const result = await new Validator().validate(document);
    expect(result.valid).toBe(true);
  });

  it('needs no API key, as /healthz does', async () => {
    expect((await api.fetch('/openapi.json')).status).toBe(200);
    expect((await api.fetch('/v1/models')).status).toBe(401);
  });
});

describe('GET /docs', () => {
  it('serves the reference page and the Swagger UI files it loads, from the API itself', async () => {
    const page = await api.fetch('/docs');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await page.text();
    expect(html).toContain('<script src="/docs/swagger-ui-bundle.js"></script>');
    const init = await api.fetch('/docs/init.js');
    expect(await init.text()).toContain('"/openapi.json"');
    const bundle = await api.fetch('/docs/swagger-ui-bundle.js');
    expect(bundle.status).toBe(200);
    expect(bundle.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect((await bundle.arrayBuffer()).byteLength).toBeGreaterThan(100_000);
    const css = await api.fetch('/docs/swagger-ui.css');
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
  });

  it('serves no other file of the package', async () => {
    for (const name of [
      'index.html',
      'package.json',
      'swagger-initializer.js',
      'constructor',
      '..%2Fpackage.json',
    ]) {
      const response = await api.fetch(`/docs/${name}`);
      expect(response.status, name).toBe(404);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
  });
});

describe('the status routes', () => {
  it('answer as documented (the suite checks each answer against the document)', async () => {
    const figures = await api.fetch('/status.json');
    expect(figures.status).toBe(200);
    const snapshot = (await figures.json()) as { models: { name: string }[] };
    expect(snapshot.models.map((model) => model.name)).toEqual(['affine']);
    const page = await api.fetch('/status');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
  });
});

describe("the suite's check of every answer", () => {
  it('fails a test that receives an answer off the document', async () => {
    const document = JSON.stringify(buildOpenApiDocument(loadConfig({})));
    const offDocument: Server = createServer((req, res) => {
      if (req.url === '/openapi.json') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(document);
        return;
      }
      // A model list whose entries lack every field, and a teapot.
      if (req.url === '/v1/models')
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"models":[{}]}');
      else res.writeHead(418, { 'content-type': 'application/json' }).end('{}');
    });
    await new Promise<void>((resolve) => offDocument.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(offDocument.address() as AddressInfo).port}`;
    try {
      checkAnswersOf(base);
      await expect(fetch(`${base}/v1/models`)).rejects.toThrow(
        "GET /v1/models → 200: ModelList/models/0 must have required property 'name'",
      );
      await expect(fetch(`${base}/healthz`)).rejects.toThrow(
        'GET /healthz → 418: status 418 is not documented for this operation',
      );
    } finally {
      offDocument.close();
    }
  });
});
