/**
 * Checks an HTTP answer against the OpenAPI document: its status is one the operation documents,
 * its required headers are present, its content type is documented, and a JSON body matches the
 * documented schema. The integration suite runs it on every answer it receives from an API
 * (test/helpers/openapi-answers.ts); it lives here, beside the document, so its own unit test runs
 * with the document's.
 */
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';

type JsonObject = Record<string, unknown>;

/** Paths served beside the API by Bull Board (`QUEUE_BACKEND=bullmq`): described in docs/api.md only. */
const OUTSIDE_THE_DOCUMENT = ['/admin/queues'];

export interface Answer {
  method: string;
  /** The path, without query. */
  path: string;
  status: number;
  headers: Headers;
  /** The body's text, for JSON answers (undefined for streams and binary bodies). */
  text?: string;
}

interface Operation {
  responses: Record<string, { headers?: Record<string, { required?: boolean }>; content?: JsonObject }>;
}

// The document's own fields, which are not JSON Schema keywords: known to Ajv so that strict mode
// still refuses an unknown keyword inside a schema.
const DOCUMENT_FIELDS = ['openapi', 'info', 'tags', 'paths', 'components', 'security', 'servers'];

export class AnswerChecker {
  private readonly routes: { pattern: RegExp; item: Record<string, Operation> }[];
  private readonly ajv: Ajv2020;
  private readonly validators = new Map<string, ValidateFunction>();

  constructor(document: JsonObject) {
    this.ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
    this.ajv.addVocabulary(DOCUMENT_FIELDS);
    this.ajv.addSchema(document, 'openapi.json');
    this.routes = Object.entries(document.paths as Record<string, Record<string, Operation>>).map(
      ([template, item]) => ({ pattern: templatePattern(template), item }),
    );
  }

  /** Compiles every component schema (throws on an unresolvable $ref or an unknown keyword). */
  compileAll(names: string[]): void {
    for (const name of names) this.validator(`#/components/schemas/${name}`);
  }

  /** What is wrong with `answer`, or an empty list. */
  check(answer: Answer): string[] {
    const path = answer.path.length > 120 ? `${answer.path.slice(0, 120)}…` : answer.path;
    const where = `${answer.method} ${path} → ${answer.status}`;
    // Bull Board's own pages and JSON API (docs/api.md) are its surface, not ours.
    if (OUTSIDE_THE_DOCUMENT.some((prefix) => answer.path.startsWith(prefix))) return [];
    const operation = this.operation(answer.method, answer.path);
    const contentType = (answer.headers.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    if (operation === undefined) {
      // Unknown routes and methods are answered as any error is: a problem. Bull Board's own pages
      // and JSON API (docs/api.md) are its surface, not ours: only our errors there are checked.
      if (answer.status < 400 && OUTSIDE_THE_DOCUMENT.some((prefix) => answer.path.startsWith(prefix)))
        return [];
      if (answer.status >= 400)
        return this.checkBody(
          where,
          contentType,
          { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
          answer,
        );
      return [`${where}: the document has no such operation`];
    }
    const response = operation.responses[String(answer.status)];
    if (response === undefined)
      return [`${where}: status ${answer.status} is not documented for this operation`];
    const problems: string[] = [];
    for (const [name, header] of Object.entries(response.headers ?? {})) {
      if (header.required === true && !answer.headers.has(name)) problems.push(`${where}: no ${name} header`);
    }
    return [...problems, ...this.checkBody(where, contentType, response.content ?? {}, answer)];
  }

  private checkBody(where: string, contentType: string, content: JsonObject, answer: Answer): string[] {
    if (Object.keys(content).length === 0) return [];
    const media = content[contentType] as { schema?: JsonObject } | undefined;
    if (media === undefined) {
      return [
        `${where}: content type '${contentType}' is not documented (${Object.keys(content).join(', ')})`,
      ];
    }
    if (answer.text === undefined || answer.method === 'HEAD' || !contentType.endsWith('json')) return [];
    const schemaRef = media.schema?.$ref;
    if (typeof schemaRef !== 'string') return [];
    let body: unknown;
    try {
      body = JSON.parse(answer.text);
    } catch {
      return [`${where}: the body is not JSON`];
    }
    const validate = this.validator(schemaRef);
    if (validate(body)) return [];
    return (validate.errors ?? []).map(
      (error) => `${where}: ${schemaRef.split('/').pop()}${error.instancePath} ${error.message ?? ''}`,
    );
  }

  private operation(method: string, path: string): Operation | undefined {
    const route = this.routes.find(({ pattern }) => pattern.test(path));
    // HEAD is GET without a body (RFC 9110), answered by every GET route.
    const verb = method.toLowerCase();
    return route?.item[verb] ?? (verb === 'head' ? route?.item.get : undefined);
  }

  private validator(schemaRef: string): ValidateFunction {
    let validate = this.validators.get(schemaRef);
    if (validate === undefined) {
      validate = this.ajv.compile({ $ref: `openapi.json${schemaRef}` });
      this.validators.set(schemaRef, validate);
    }
    return validate;
  }
}

/** `/v1/requests/{id}` → a pattern matching one path segment per parameter (as routed: any case, one trailing slash). */
function templatePattern(template: string): RegExp {
  const source = template
    .split(/\{[^}]+\}/)
    .map((part) => part.replace(/[.*+?^$()|[\]\\]/g, '\\$&'))
    .join('[^/]+');
  return new RegExp(`^${source}/?$`, 'i');
}
