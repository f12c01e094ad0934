/**
 * The OpenAPI 3.1 document of the HTTP API, built from protocol's wire schemas (the zod schemas the
 * API validates request envelopes with, and the schemas its answers are type-checked against), so
 * the document cannot drift from the code. Built once per process from its configuration: limits
 * (bulk size, wait) and whether API keys are required are the deployment's own.
 */
import type { Config } from '@inferq/config';
import { WIRE_SCHEMAS, wireBulkInferRequest } from '@inferq/protocol';
import { z } from 'zod';
import { WireStatusSnapshot } from '../status/status-schema.ts';

type JsonObject = Record<string, unknown>;

export const OPENAPI_PATH = '/openapi.json';
export const DOCS_PATH = '/docs';
/** The document's own version: the API's (`/v1`) major, then this document's revisions. */
const DOCUMENT_VERSION = '1.0.0';

const STATUS_ACCESS =
  'Open while no admin credential is configured; with ADMIN_KEY or ADMIN_TENANTS set, the admin key (Bearer or Basic): 401 without one, 403 for another tenant’s key.';

const ref = (name: string): JsonObject => ({ $ref: `#/components/schemas/${name}` });

const WIRE_MEDIA = ['application/json', 'application/msgpack'] as const;
const IMAGE_MEDIA = ['image/png', 'image/jpeg', 'image/webp'] as const;

/** The same schema in JSON and in MessagePack (whose tensors carry `bin` data). */
function wireContent(schema: string): JsonObject {
  return Object.fromEntries(WIRE_MEDIA.map((media) => [media, { schema: ref(schema) }]));
}

const RETRY_AFTER = {
  description: 'Seconds to wait before trying again.',
  required: true,
  schema: { type: 'integer', minimum: 0 },
};

/** A problem answer; 429 and 503 always carry Retry-After. */
function problem(description: string, status: number): JsonObject {
  return {
    description,
    content: { 'application/problem+json': { schema: ref('Problem') } },
    ...(status === 429 || status === 503 ? { headers: { 'Retry-After': RETRY_AFTER } } : {}),
  };
}

const PROBLEMS: Record<number, string> = {
  400: 'Malformed body, query or header, or a cap exceeded.',
  401: 'Missing or unknown API key (when API_KEYS is set).',
  404: 'Unknown model, version or request (or another tenant’s request).',
  409: 'The request can no longer be cancelled.',
  413: 'Body over MAX_BODY_BYTES, or an image over its pipeline’s pixel cap.',
  408: 'The request (its headers or body) did not arrive in time.',
  415: 'Unsupported content type.',
  431: 'Request header fields too large (or a request line too long).',
  422: 'A body that does not fit the model (signature, batch axis, callback, idempotency key reuse, image header).',
  429: '`queue-full` or `rate-limited`.',
  500: 'Our own fault; it has been logged.',
  503: 'Redis unreachable or refusing writes, `model-unavailable`, or `deadline-unmeetable`.',
};

/** Any route may answer these: a malformed request line or header, and our own fault. */
const ANY_ROUTE = [400, 408, 431, 500];

function problems(...statuses: number[]): JsonObject {
  return Object.fromEntries(
    [...new Set([...statuses, ...ANY_ROUTE])]
      .sort()
      .map((status) => [String(status), problem(PROBLEMS[status] ?? '', status)]),
  );
}

const modelParam = {
  name: 'model',
  in: 'path',
  required: true,
  description: 'A model or pipeline name.',
  schema: { type: 'string' },
};
const versionParam = {
  name: 'version',
  in: 'path',
  required: true,
  description: 'A version number.',
  schema: { type: 'integer', minimum: 1 },
};
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
const idempotencyKey = {
  name: 'Idempotency-Key',
  in: 'header',
  description: 'The same key and body answer as the first did, with the same id(s).',
  schema: { type: 'string', minLength: 1, maxLength: 255 },
};
/** W3C Trace Context: carried through the queue to the worker and onto webhooks (docs/observability.md). */
const traceHeaders = [
  {
    name: 'traceparent',
    in: 'header',
    description: 'W3C Trace Context; a malformed value is ignored, never refused.',
    schema: { type: 'string' },
  },
  {
    name: 'tracestate',
    in: 'header',
    description: 'W3C Trace Context vendor state.',
    schema: { type: 'string' },
  },
];
const acceptParam = {
  name: 'Accept',
  in: 'header',
  description: 'application/json (default for GET) or application/msgpack.',
  schema: { type: 'string' },
};

function inferOperation(config: Config, versioned: boolean): JsonObject {
  return {
    tags: ['inference'],
    operationId: versioned ? 'inferVersion' : 'infer',
    summary: versioned
      ? 'Submit a request to one version'
      : "Submit a request to the model's default version",
    parameters: [
      modelParam,
      ...(versioned ? [versionParam] : []),
      {
        name: 'Prefer',
        in: 'header',
        description: `\`wait=N\`: wait up to N seconds (at most ${config.maxWaitSeconds}) for the result.`,
        schema: { type: 'string', examples: ['wait=5'] },
      },
      idempotencyKey,
      ...traceHeaders,
    ],
    requestBody: {
      required: true,
      content: {
        ...wireContent('InferRequest'),
        // A model or pipeline whose one input is uint8 bytes takes them as the body itself.
        ...Object.fromEntries(
          IMAGE_MEDIA.map((media) => [media, { schema: { type: 'string', contentMediaType: media } }]),
        ),
      },
    },
    responses: {
      '200': {
        description: 'Finished in time (Prefer: wait), or a cache hit.',
        content: wireContent('RequestRecord'),
      },
      '202': {
        description: 'Accepted: poll Location, or follow its events.',
        headers: { Location: { required: true, schema: { type: 'string' } } },
        content: wireContent('Accepted'),
      },
      ...problems(400, 401, 404, 413, 415, 422, 429, 503),
    },
  };
}

function bulkOperation(versioned: boolean): JsonObject {
  return {
    tags: ['inference'],
    operationId: versioned ? 'inferBulkVersion' : 'inferBulk',
    summary: 'Submit many requests in one body',
    parameters: [modelParam, ...(versioned ? [versionParam] : []), idempotencyKey, ...traceHeaders],
    requestBody: { required: true, content: wireContent('BulkInferRequest') },
    responses: {
      '202': {
        description: 'Accepted (some may have been refused: `rejected`).',
        content: wireContent('BulkAccepted'),
      },
      ...problems(400, 401, 404, 413, 415, 422, 429, 503),
    },
  };
}

/** The answer schemas, each a component named by its `meta({ id })`. */
function componentSchemas(config: Config): JsonObject {
  const registry = z.registry<{ id: string }>();
  for (const schema of [
    ...WIRE_SCHEMAS,
    wireBulkInferRequest(config.caps.maxBulkRequests),
    WireStatusSnapshot,
  ]) {
    const id = (schema.meta() as { id?: string } | undefined)?.id;
    if (id === undefined) throw new Error('every top-level wire schema has an id');
    if (!registry.has(schema)) registry.add(schema, { id });
  }
  const { schemas: generated } = z.toJSONSchema(registry, {
    target: 'draft-2020-12',
    uri: (id) => `#/components/schemas/${id}`,
    // Request bodies are what a client sends (defaults still absent), answers what it reads.
    io: 'input',
  });
  // Each component is embedded in the document: its own $schema and $id would only repeat that.
  return Object.fromEntries(
    Object.entries(generated).map(([id, { $schema: _s, $id: _i, ...schema }]) => [id, schema]),
  );
}

/** The API's OpenAPI 3.1 document for `config`. */
export function buildOpenApiDocument(config: Config): JsonObject {
  const keysRequired = config.apiKeys !== undefined && config.apiKeys.size > 0;
  const get = (operation: JsonObject): JsonObject => ({ get: operation });
  // Open like /metrics until an admin credential is configured; then the admin's, as Bull Board.
  const adminConfigured = config.admin.key !== undefined || config.admin.tenants.length > 0;
  const statusSecurity = adminConfigured ? [{ adminKey: [] }, { adminBasic: [] }] : [];
  return {
    openapi: '3.1.1',
    info: {
      title: 'inferq',
      version: DOCUMENT_VERSION,
      summary: 'Queue-backed asynchronous inference: submit tensors or images, read results.',
      description:
        'Requests are queued durably in Redis and run by batching workers; results are cached by input hash. Every error is application/problem+json. Bodies are JSON or MessagePack (the same shapes; MessagePack tensors carry their data as `bin`).',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    tags: [
      { name: 'inference', description: 'Submit requests.' },
      { name: 'requests', description: 'Read, follow and cancel requests.' },
      { name: 'models', description: 'Models, pipelines and their states.' },
      { name: 'operations', description: 'Health, readiness, metrics and this document.' },
    ],
    ...(keysRequired ? { security: [{ apiKey: [] }] } : {}),
    paths: {
      '/v1/models/{model}/infer': { post: inferOperation(config, false) },
      '/v1/models/{model}/versions/{version}/infer': { post: inferOperation(config, true) },
      '/v1/models/{model}/infer:bulk': { post: bulkOperation(false) },
      '/v1/models/{model}/versions/{version}/infer:bulk': { post: bulkOperation(true) },
      '/v1/requests/{id}': {
        get: {
          tags: ['requests'],
          operationId: 'getRequest',
          summary: 'Read a request; `wait` long-polls for its end',
          parameters: [
            idParam,
            {
              name: 'wait',
              in: 'query',
              description: `Seconds to wait for a terminal state (at most ${config.maxWaitSeconds}).`,
              schema: { type: 'integer', minimum: 0 },
            },
            acceptParam,
          ],
          responses: {
            '200': { description: 'The record.', content: wireContent('RequestRecord') },
            ...problems(400, 401, 404, 503),
          },
        },
        delete: {
          tags: ['requests'],
          operationId: 'cancelRequest',
          summary: 'Cancel a queued request (or a running pipeline request)',
          parameters: [idParam, acceptParam],
          responses: {
            '200': { description: 'The cancelled record.', content: wireContent('RequestRecord') },
            ...problems(400, 401, 404, 409, 503),
          },
        },
      },
      '/v1/requests/{id}/events': get({
        tags: ['requests'],
        operationId: 'requestEvents',
        summary: 'Server-Sent Events: `status` events, the last one the full record',
        description:
          'Each `event: status` carries a StatusEvent (components) until the terminal one, which carries the RequestRecord; then the stream ends. A record lost meanwhile ends the stream with `event: error` carrying its Problem.',
        parameters: [idParam],
        responses: {
          '200': {
            description: 'The event stream.',
            content: {
              'text/event-stream': { schema: { type: 'string' } },
            },
          },
          ...problems(400, 401, 404, 503),
        },
      }),
      '/v1/models': get({
        tags: ['models'],
        operationId: 'listModels',
        summary: 'Every model and pipeline, with its versions’ states',
        parameters: [acceptParam],
        responses: {
          '200': { description: 'The models.', content: wireContent('ModelList') },
          ...problems(401),
        },
      }),
      '/v1/models/{model}': get({
        tags: ['models'],
        operationId: 'getModel',
        summary: 'One model or pipeline',
        parameters: [modelParam, acceptParam],
        responses: {
          '200': { description: 'The model.', content: wireContent('ModelDescription') },
          ...problems(401, 404),
        },
      }),
      '/healthz': get({
        tags: ['operations'],
        operationId: 'health',
        summary: 'Liveness',
        security: [],
        responses: {
          '200': { description: 'Alive.', content: { 'application/json': { schema: ref('Health') } } },
          ...problems(),
        },
      }),
      '/readyz': get({
        tags: ['operations'],
        operationId: 'ready',
        summary: 'Redis answers and every default version is ready on a live worker',
        security: [],
        responses: {
          '200': { description: 'Ready.', content: { 'application/json': { schema: ref('Readiness') } } },
          '503': {
            description: 'Not ready: `missing` says why.',
            headers: { 'Retry-After': RETRY_AFTER },
            content: { 'application/json': { schema: ref('Readiness') } },
          },
          ...problems(),
        },
      }),
      '/metrics': get({
        tags: ['operations'],
        operationId: 'metrics',
        summary: 'Prometheus metrics',
        security: [],
        responses: {
          '200': {
            description: 'Prometheus text format.',
            content: { 'text/plain': { schema: { type: 'string' } } },
          },
          ...problems(),
        },
      }),
      '/status': get({
        tags: ['operations'],
        operationId: 'statusPage',
        summary: 'The live status page (HTML, refreshing itself from /status.json)',
        description: STATUS_ACCESS,
        security: statusSecurity,
        responses: {
          '200': { description: 'The page.', content: { 'text/html': { schema: { type: 'string' } } } },
          ...problems(401, 403),
        },
      }),
      '/status.json': get({
        tags: ['operations'],
        operationId: 'status',
        summary:
          'Per model version: state, live workers, queue depth, throughput, latency, batches; per model: cache hits',
        description: STATUS_ACCESS,
        security: statusSecurity,
        responses: {
          '200': {
            description: 'The figures.',
            content: { 'application/json': { schema: ref('StatusSnapshot') } },
          },
          ...problems(401, 403, 503),
        },
      }),
      [OPENAPI_PATH]: get({
        tags: ['operations'],
        operationId: 'openapi',
        summary: 'This document',
        security: [],
        responses: {
          '200': {
            description: 'OpenAPI 3.1.',
            content: { 'application/json': { schema: { type: 'object' } } },
          },
          ...problems(),
        },
      }),
      [DOCS_PATH]: get({
        tags: ['operations'],
        operationId: 'docs',
        summary: 'This document, rendered',
        security: [],
        responses: {
          '200': {
            description: 'The reference page.',
            content: { 'text/html': { schema: { type: 'string' } } },
          },
          ...problems(),
        },
      }),
      [`${DOCS_PATH}/{file}`]: get({
        tags: ['operations'],
        operationId: 'docsAsset',
        summary: 'The files the reference page loads (Swagger UI, from the swagger-ui-dist package)',
        security: [],
        parameters: [{ name: 'file', in: 'path', required: true, schema: { type: 'string' } }],
        responses: {
          '200': {
            description: 'The file.',
            content: Object.fromEntries(
              ['text/javascript', 'text/css', 'image/png'].map((media) => [
                media,
                { schema: { type: 'string' } },
              ]),
            ),
          },
          ...problems(404),
        },
      }),
    },
    components: {
      schemas: componentSchemas(config),
      securitySchemes: {
        apiKey: {
          type: 'http',
          scheme: 'bearer',
          description: 'An API key of API_KEYS; its tenant owns the requests.',
        },
        adminKey: {
          type: 'http',
          scheme: 'bearer',
          description: 'ADMIN_KEY, or the API key of a tenant in ADMIN_TENANTS.',
        },
        adminBasic: {
          type: 'http',
          scheme: 'basic',
          description: 'The same key as the password of HTTP Basic.',
        },
      },
    },
  };
}
