/**
 * Every setting inferq reads from the environment, parsed and validated once at start-up (a bad value
 * stops the process with one line naming it). One file on purpose, though long: each variable is one
 * schema entry with its rule and message, and seeing them together is how their defaults and
 * interactions (REDIS_URL or REDIS_CLUSTER_NODES, API_KEYS and tenants) stay consistent.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const QUEUE_BACKENDS = ['streams', 'bullmq'] as const;
export type QueueBackend = (typeof QUEUE_BACKENDS)[number];
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Every setting of every inferq process, read once at start-up from the environment (docs/api.md). */
export interface Config {
  /**
   * `redis://` or `rediss://` (TCP, TLS), or `unix:///path/to/redis.sock`; unset only where the
   * all-in-one CLI starts its own Redis.
   */
  redisUrl: string | undefined;
  /**
   * A Redis Cluster instead (`REDIS_CLUSTER_NODES`): its seed nodes, with the credentials and TLS of
   * every node; undefined: `redisUrl` names a single Redis. Never both.
   */
  redisCluster: RedisClusterConfig | undefined;
  /** Absolute path of the model repository folder. */
  modelRepository: string;
  /** Models this worker serves; undefined: all in the repository. */
  models: string[] | undefined;
  /** How often API and workers read the model repository again (s); 0: only on demand. */
  repositoryPollSeconds: number;
  /**
   * Accept requests for a model version that no live worker serves (they wait in Redis for one to
   * start, as scale-from-zero needs); false: such a request is refused with 503 and Retry-After.
   */
  waitForCapacity: boolean;
  host: string;
  port: number;
  metricsPort: number;
  /** API key -> tenant; undefined: the API is open and every caller is tenant `public`. */
  apiKeys: ReadonlyMap<string, string> | undefined;
  /** Who may open the admin routes (Bull Board); neither set: nobody. */
  admin: AdminConfig;
  queuePrefix: string;
  /** Where requests wait for workers: inferq's Redis-streams queue or BullMQ (docs/design.md). */
  queueBackend: QueueBackend;
  maxBodyBytes: number;
  /** What one request may hold; structurally protocol's `InputLimits` plus the output and bulk caps. */
  caps: RequestCaps;
  logLevel: LogLevel;
  /** How long finished request records (and their outputs) stay readable. */
  resultTtlSeconds: number;
  /** Upper bound of `Prefer: wait=N` and `?wait=N`; larger values are clamped to it. */
  maxWaitSeconds: number;
  /** How long a stopping process lets open requests and running batches finish. */
  shutdownGraceMs: number;
  /**
   * How long the API keeps an idle HTTP connection open (Node's `keepAliveTimeout`, announced as
   * `Keep-Alive: timeout=N`). Behind a load balancer it must exceed the balancer's idle timeout.
   */
  keepAliveTimeoutMs: number;
  /** Tries per job before a request ends `failed`. */
  jobAttempts: number;
  /** Backpressure and idempotency of submissions (apps/api/README.md). */
  limits: AdmissionLimits;
  /** `callback.url` delivery (docs/webhooks.md). */
  webhooks: WebhookConfig;
  /** OpenTelemetry spans over OTLP/HTTP (docs/observability.md); undefined: tracing off. */
  tracing: TracingConfig | undefined;
}

/** Where and how spans are exported (the standard OTEL_* variables). */
export interface TracingConfig {
  /** The OTLP/HTTP traces URL: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT + `/v1/traces`. */
  tracesUrl: string;
  /** OTEL_SERVICE_NAME; undefined: each process's own (inferq-api, inferq-worker). */
  serviceName: string | undefined;
  /** OTEL_BSP_SCHEDULE_DELAY: how long finished spans wait to be exported together (ms). */
  exportDelayMs: number;
}

/** The credentials of the admin routes (docs/security.md). */
export interface AdminConfig {
  /** ADMIN_KEY: opens the admin routes and nothing else (it is no tenant's key). */
  key: string | undefined;
  /** ADMIN_TENANTS: tenants of API_KEYS whose keys open the admin routes too. */
  tenants: readonly string[];
}

/** A Redis Cluster's seed nodes and what every node needs (one ACL and TLS setting per cluster). */
export interface RedisClusterConfig {
  nodes: { host: string; port: number }[];
  username?: string;
  password?: string;
  tls: boolean;
}

/** Webhook signing, retries and the destinations the deliverer may call. */
export interface WebhookConfig {
  /** HMAC-SHA256 key (WEBHOOK_SECRET, `whsec_` + base64, decoded); undefined: webhooks are refused. */
  secret: Uint8Array | undefined;
  /** Host names exempt from the private-address rule (lower case, exact match). */
  allowHosts: string[];
  /** CIDR ranges (`10.0.0.0/8`, `fd00::/8`) whose addresses are exempt from the private-address rule. */
  allowCidrs: string[];
  /** Delivery attempts, the first one included, before a webhook is given up. */
  maxAttempts: number;
  /** The ceiling of the first retry's random delay; it doubles per attempt up to `retryMaxMs`. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** One attempt (DNS, connection, response headers) ends as failed after this long. */
  timeoutMs: number;
}

/** Caps that keep one hostile or careless request from taking a small machine down (docs/security.md). */
export interface RequestCaps {
  maxElementsPerTensor: number;
  maxRank: number;
  maxDimension: number;
  maxStringBytes: number;
  maxInputs: number;
  /** Tensor elements one body may spell out as lists (JSON arrays, string tensors), all tensors together. */
  maxListElements: number;
  /** MessagePack bytes of one request's outputs; larger results end `failed` (`output_too_large`). */
  maxOutputBytes: number;
  /** Requests in one `infer:bulk` body. */
  maxBulkRequests: number;
}

/** What the submit script checks before it accepts a request. */
export interface AdmissionLimits {
  /** Most requests queued (waiting for a worker) per model version; 0: no limit. */
  maxQueueDepth: number;
  /** Requests per second each tenant's token bucket refills; 0: no rate limit. */
  rateLimitPerSecond: number;
  /** Bucket size: how many requests a tenant may send at once after a pause. */
  rateLimitBurst: number;
  /** How long an `Idempotency-Key` keeps naming its first request. */
  idempotencyTtlSeconds: number;
}

export interface LoadConfigOptions {
  /** The API and the worker need a Redis URL; only the all-in-one CLI may start without one. */
  requireRedisUrl?: boolean;
}

export interface ConfigIssue {
  variable: string;
  message: string;
}

/** A bad environment: `message` is one line naming each offending variable. */
export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    super(`invalid configuration: ${issues.map((i) => `${i.variable}: ${i.message}`).join('; ')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

const MIB = 1024 * 1024;

// An empty variable (`PORT=`) means "use the default", as it does for most twelve-factor services.
const unsetIfBlank = (value: unknown): unknown =>
  typeof value === 'string' && value.trim() === '' ? undefined : value;

function integer(min: number, max: number, fallback: number) {
  return z.preprocess(
    (value) => {
      const v = unsetIfBlank(value);
      return typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : v;
    },
    z
      .number({ error: `expected an integer from ${min} to ${max}` })
      .int({ error: `expected an integer from ${min} to ${max}` })
      .min(min, { error: `expected an integer from ${min} to ${max}` })
      .max(max, { error: `expected an integer from ${min} to ${max}` })
      .default(fallback),
  );
}

function commaList(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

const redisUrl = z.preprocess(
  unsetIfBlank,
  z
    .string()
    .refine(
      (value) => {
        try {
          const url = new URL(value);
          if (url.protocol === 'unix:') return url.hostname === '' && url.pathname.length > 1;
          return (url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname !== '';
        } catch {
          return false;
        }
      },
      { error: 'expected a redis:// or rediss:// URL with a host, or unix:///path/to/redis.sock' },
    )
    .optional(),
);

/**
 * `host:port` or `redis[s]://[user[:password]@]host:port` entries, comma separated; URL entries
 * must agree on scheme and credentials (a cluster has one), which then apply to every node.
 */
const redisClusterNodes = z.preprocess(
  unsetIfBlank,
  z
    .string()
    .transform((value, ctx): RedisClusterConfig => {
      const config: RedisClusterConfig = { nodes: [], tls: false };
      let access: string | undefined;
      for (const entry of commaList(value)) {
        const url = parseNode(entry);
        if (url === undefined) {
          ctx.addIssue({
            code: 'custom',
            message: `expected host:port or redis[s]://host:port entries, comma separated; "${redactNode(entry)}" is not one`,
          });
          return z.NEVER;
        }
        config.nodes.push({ host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port) });
        if (!entry.includes('://')) continue;
        const thisAccess = `${url.protocol}${url.username}:${url.password}`;
        if (access !== undefined && access !== thisAccess) {
          ctx.addIssue({
            code: 'custom',
            message: 'every URL entry must have the same scheme and credentials',
          });
          return z.NEVER;
        }
        access = thisAccess;
        config.tls = url.protocol === 'rediss:';
        if (url.username !== '') config.username = decodeURIComponent(url.username);
        if (url.password !== '') config.password = decodeURIComponent(url.password);
      }
      if (config.nodes.length === 0) {
        ctx.addIssue({ code: 'custom', message: 'expected at least one host:port' });
        return z.NEVER;
      }
      return config;
    })
    .optional(),
);

/** A cluster node entry as a URL with a host and a port, or undefined. */
function parseNode(entry: string): URL | undefined {
  try {
    const url = new URL(entry.includes('://') ? entry : `redis://${entry}`);
    const port = Number(url.port);
    const plain = url.pathname === '' || url.pathname === '/';
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return undefined;
    if (url.hostname === '' || !plain || url.search !== '' || !(port >= 1 && port <= 65535)) return undefined;
    return url;
  } catch {
    return undefined;
  }
}

/** An entry as it may be shown: without a password. */
function redactNode(entry: string): string {
  return entry.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

const models = z.preprocess(
  unsetIfBlank,
  z
    .string()
    .transform((value, ctx) => {
      const names = commaList(value);
      if (names.length === 0)
        ctx.addIssue({ code: 'custom', message: 'expected a comma list of model names' });
      const bad = names.find((name) => !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name));
      if (bad !== undefined) ctx.addIssue({ code: 'custom', message: `"${bad}" is not a model folder name` });
      return names;
    })
    .optional(),
);

// Entries are `tenant:key`; the key is everything after the first colon so keys may contain colons.
// Messages never repeat a key: they end up in logs.
const apiKeys = z.preprocess(
  unsetIfBlank,
  z
    .string()
    .transform((value, ctx) => {
      const byKey = new Map<string, string>();
      const entries = commaList(value);
      entries.forEach((entry, index) => {
        const colon = entry.indexOf(':');
        const tenant = colon < 0 ? '' : entry.slice(0, colon).trim();
        const key = colon < 0 ? '' : entry.slice(colon + 1).trim();
        if (tenant === '' || key === '' || /\s/.test(tenant) || /\s/.test(key)) {
          ctx.addIssue({ code: 'custom', message: `entry ${index + 1} is not tenant:key` });
        } else if (byKey.has(key)) {
          ctx.addIssue({ code: 'custom', message: `entry ${index + 1} repeats a key already given` });
        } else {
          byKey.set(key, tenant);
        }
      });
      if (entries.length === 0)
        ctx.addIssue({ code: 'custom', message: 'expected a comma list of tenant:key' });
      return byKey as ReadonlyMap<string, string>;
    })
    .optional(),
);

// A secret like the API keys: messages never repeat it.
const adminKey = z.preprocess(
  unsetIfBlank,
  z
    .string()
    .trim()
    .regex(/^\S{16,}$/, {
      error: 'expected at least 16 characters without whitespace (openssl rand -base64 32)',
    })
    .optional(),
);

// Tenant names, not a marker inside API_KEYS: any character may already be part of a tenant name
// there, and a key may contain colons, so no marker could be added without changing existing entries.
const tenantList = z.preprocess((value) => unsetIfBlank(value) ?? '', z.string().transform(commaList));

const queuePrefix = z.preprocess(
  unsetIfBlank,
  z.string().regex(/^\S+$/, { error: 'expected a non-empty prefix without spaces' }).default('{inferq}'),
);

const queueBackend = z.preprocess(
  (value) => {
    const v = unsetIfBlank(value);
    return typeof v === 'string' ? v.trim().toLowerCase() : v;
  },
  z.enum(QUEUE_BACKENDS, { error: `expected one of ${QUEUE_BACKENDS.join(', ')}` }).default('streams'),
);

const logLevel = z.preprocess(
  (value) => {
    const v = unsetIfBlank(value);
    return typeof v === 'string' ? v.trim().toLowerCase() : v;
  },
  z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(', ')}` }).default('info'),
);

// Standard Webhooks secrets: `whsec_` then base64 of 24 to 64 random bytes (the prefix may be left out).
const webhookSecret = z.preprocess(
  unsetIfBlank,
  z
    .string()
    .transform((value, ctx) => {
      const encoded = value.trim().replace(/^whsec_/, '');
      const key =
        /^[A-Za-z0-9+/]+={0,2}$/.test(encoded) && encoded.length % 4 === 0
          ? Buffer.from(encoded, 'base64')
          : undefined;
      if (key === undefined || key.length < 24 || key.length > 64) {
        ctx.addIssue({
          code: 'custom',
          message: 'expected whsec_ followed by base64 of 24 to 64 random bytes (openssl rand -base64 32)',
        });
        return z.NEVER;
      }
      return new Uint8Array(key);
    })
    .optional(),
);

const hostList = z.preprocess(
  (value) => unsetIfBlank(value) ?? '',
  z.string().transform((value, ctx) => {
    const hosts = commaList(value).map((host) => host.toLowerCase().replace(/\.$/, ''));
    const bad = hosts.find(
      (host) => !/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(host),
    );
    if (bad !== undefined) ctx.addIssue({ code: 'custom', message: `"${bad}" is not a host name` });
    return hosts;
  }),
);

// A bare address means that address alone (/32 or /128).
const cidrList = z.preprocess(
  (value) => unsetIfBlank(value) ?? '',
  z.string().transform((value, ctx) => {
    const ranges: string[] = [];
    for (const entry of commaList(value)) {
      const [address = '', prefix, extra] = entry.split('/');
      const family = isIP(address);
      const bits = family === 4 ? 32 : 128;
      const length = prefix === undefined ? bits : /^\d{1,3}$/.test(prefix) ? Number(prefix) : -1;
      if (family === 0 || extra !== undefined || length < 0 || length > bits) {
        ctx.addIssue({ code: 'custom', message: `"${entry}" is not an address or CIDR range` });
      } else {
        ranges.push(`${address.toLowerCase()}/${length}`);
      }
    }
    return ranges;
  }),
);

// An OTLP/HTTP endpoint: http(s) with a host. Messages never repeat it (its query may hold a token).
const otlpEndpoint = z.preprocess(
  unsetIfBlank,
  z
    .string()
    .trim()
    .refine(
      (value) => {
        try {
          const url = new URL(value);
          return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
        } catch {
          return false;
        }
      },
      { error: 'expected an http:// or https:// URL with a host' },
    )
    .optional(),
);

// inferq exports OTLP over HTTP (JSON), which every OTLP/HTTP endpoint takes; gRPC is another port
// and another protocol, so asking for it is a mistake to name rather than a silent export failure.
const otlpProtocol = z.preprocess(
  (value) => {
    const v = unsetIfBlank(value);
    return typeof v === 'string' ? v.trim().toLowerCase() : v;
  },
  z
    .enum(['http/json', 'http/protobuf'], {
      error:
        'expected http/json or http/protobuf (inferq sends OTLP over HTTP, as JSON); grpc is not supported',
    })
    .optional(),
);

/**
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is the traces URL as it is; OTEL_EXPORTER_OTLP_ENDPOINT is a base
 * to which `v1/traces` is appended (OpenTelemetry's exporter specification).
 */
function tracesUrlOf(base: string | undefined, traces: string | undefined): string | undefined {
  if (traces !== undefined) return traces;
  if (base === undefined) return undefined;
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/traces`;
  return url.toString();
}

// A non-negative decimal (`0.5` requests per second is a valid rate).
function decimal(min: number, max: number, fallback: number) {
  const error = `expected a number from ${min} to ${max}`;
  return z.preprocess((value) => {
    const v = unsetIfBlank(value);
    return typeof v === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : v;
  }, z.number({ error }).min(min, { error }).max(max, { error }).default(fallback));
}

// An integer whose default depends on other variables (resolved in loadConfig).
function optionalInteger(min: number, max: number) {
  const error = `expected an integer from ${min} to ${max}`;
  return z.preprocess((value) => {
    const v = unsetIfBlank(value);
    return typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : v;
  }, z.number({ error }).int({ error }).min(min, { error }).max(max, { error }).optional());
}

/** `true`/`false` (also `1`/`0`, `yes`/`no`, any case); anything else names the variable. */
function flag(fallback: boolean) {
  const error = 'expected true or false';
  return z.preprocess((value) => {
    const v = unsetIfBlank(value);
    if (typeof v !== 'string') return v;
    const lower = v.trim().toLowerCase();
    if (['true', '1', 'yes'].includes(lower)) return true;
    if (['false', '0', 'no'].includes(lower)) return false;
    return v;
  }, z.boolean({ error }).default(fallback));
}

const text = (fallback: string) => z.preprocess(unsetIfBlank, z.string().trim().default(fallback));

const EnvSchema = z.object({
  REDIS_URL: redisUrl,
  REDIS_CLUSTER_NODES: redisClusterNodes,
  MODEL_REPOSITORY: z.preprocess(unsetIfBlank, z.string().optional()),
  MODELS: models,
  REPOSITORY_POLL_SECONDS: integer(0, 86_400, 5),
  WAIT_FOR_CAPACITY: flag(false),
  HOST: text('0.0.0.0'),
  PORT: integer(0, 65535, 8080),
  METRICS_PORT: integer(0, 65535, 9464),
  API_KEYS: apiKeys,
  ADMIN_KEY: adminKey,
  ADMIN_TENANTS: tenantList,
  QUEUE_PREFIX: queuePrefix,
  QUEUE_BACKEND: queueBackend,
  MAX_BODY_BYTES: integer(1, 1024 * MIB, 16 * MIB),
  MAX_TENSOR_ELEMENTS: integer(1, 2 ** 32, 16 * MIB),
  MAX_TENSOR_RANK: integer(1, 64, 8),
  MAX_DIMENSION: integer(1, 2 ** 32, 16 * MIB),
  MAX_STRING_BYTES: integer(1, 1024 * MIB, 64 * 1024),
  MAX_INPUTS: integer(1, 4096, 64),
  MAX_LIST_ELEMENTS: integer(0, 2 ** 28, MIB),
  // 512 MiB is Redis's largest string; 32 MiB is its default pub/sub output-buffer hard limit.
  MAX_OUTPUT_BYTES: integer(1, 512 * MIB, 16 * MIB),
  MAX_BULK_REQUESTS: integer(1, 10_000, 64),
  LOG_LEVEL: logLevel,
  RESULT_TTL_SECONDS: integer(1, 365 * 86400, 86400),
  MAX_WAIT_SECONDS: integer(0, 3600, 60),
  SHUTDOWN_GRACE_MS: integer(0, 3_600_000, 10_000),
  KEEP_ALIVE_TIMEOUT_MS: integer(1_000, 3_600_000, 5_000),
  JOB_ATTEMPTS: integer(1, 100, 3),
  MAX_QUEUE_DEPTH: integer(0, 100_000_000, 10_000),
  RATE_LIMIT_PER_SECOND: decimal(0, 1_000_000, 0),
  RATE_LIMIT_BURST: optionalInteger(1, 100_000_000),
  IDEMPOTENCY_TTL_SECONDS: integer(1, 365 * 86400, 86400),
  WEBHOOK_SECRET: webhookSecret,
  WEBHOOK_ALLOW_HOSTS: hostList,
  WEBHOOK_ALLOW_CIDRS: cidrList,
  WEBHOOK_MAX_ATTEMPTS: integer(1, 100, 15),
  WEBHOOK_RETRY_BASE_MS: integer(1, 3_600_000, 1_000),
  WEBHOOK_RETRY_MAX_MS: integer(1, 86_400_000, 3_600_000),
  WEBHOOK_TIMEOUT_MS: integer(100, 300_000, 10_000),
  OTEL_EXPORTER_OTLP_ENDPOINT: otlpEndpoint,
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: otlpEndpoint,
  OTEL_EXPORTER_OTLP_PROTOCOL: otlpProtocol,
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: otlpProtocol,
  OTEL_SERVICE_NAME: z.preprocess(unsetIfBlank, z.string().trim().optional()),
  OTEL_SDK_DISABLED: flag(false),
  OTEL_BSP_SCHEDULE_DELAY: integer(1, 3_600_000, 5_000),
});

/** Variables whose values may hold secrets (a Redis password, API keys): never echoed back. */
const SECRET_VARIABLES = new Set([
  'REDIS_URL',
  'REDIS_CLUSTER_NODES',
  'API_KEYS',
  'ADMIN_KEY',
  'WEBHOOK_SECRET',
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
]);

/**
 * Parses and validates the environment. Throws `ConfigError` naming every bad variable.
 */
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  options: LoadConfigOptions = {},
): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => {
      const variable = String(issue.path[0] ?? 'environment');
      const raw = env[variable];
      const shown = raw !== undefined && !SECRET_VARIABLES.has(variable) ? ` (got "${raw}")` : '';
      return { variable, message: issue.message + shown };
    });
    throw new ConfigError(issues);
  }
  const e = parsed.data;
  if (e.REDIS_URL !== undefined && e.REDIS_CLUSTER_NODES !== undefined) {
    throw new ConfigError([
      {
        variable: 'REDIS_CLUSTER_NODES',
        message: 'set either REDIS_URL (one Redis) or REDIS_CLUSTER_NODES, not both',
      },
    ]);
  }
  if (options.requireRedisUrl && e.REDIS_URL === undefined && e.REDIS_CLUSTER_NODES === undefined) {
    throw new ConfigError([
      {
        variable: 'REDIS_URL',
        message:
          'required by this process, or REDIS_CLUSTER_NODES (only `inferq serve` starts its own Redis)',
      },
    ]);
  }
  checkAdmin(e.ADMIN_KEY, e.ADMIN_TENANTS, e.API_KEYS);
  if (e.WEBHOOK_RETRY_MAX_MS < e.WEBHOOK_RETRY_BASE_MS) {
    throw new ConfigError([
      { variable: 'WEBHOOK_RETRY_MAX_MS', message: 'must be at least WEBHOOK_RETRY_BASE_MS' },
    ]);
  }
  return {
    redisUrl: e.REDIS_URL,
    redisCluster: e.REDIS_CLUSTER_NODES,
    modelRepository:
      e.MODEL_REPOSITORY === undefined ? defaultModelRepository() : resolve(e.MODEL_REPOSITORY),
    models: e.MODELS,
    repositoryPollSeconds: e.REPOSITORY_POLL_SECONDS,
    waitForCapacity: e.WAIT_FOR_CAPACITY,
    host: e.HOST,
    port: e.PORT,
    metricsPort: e.METRICS_PORT,
    apiKeys: e.API_KEYS,
    admin: { key: e.ADMIN_KEY, tenants: e.ADMIN_TENANTS },
    queuePrefix: e.QUEUE_PREFIX,
    queueBackend: e.QUEUE_BACKEND,
    maxBodyBytes: e.MAX_BODY_BYTES,
    caps: {
      maxElementsPerTensor: e.MAX_TENSOR_ELEMENTS,
      maxRank: e.MAX_TENSOR_RANK,
      maxDimension: e.MAX_DIMENSION,
      maxStringBytes: e.MAX_STRING_BYTES,
      maxInputs: e.MAX_INPUTS,
      maxListElements: e.MAX_LIST_ELEMENTS,
      maxOutputBytes: e.MAX_OUTPUT_BYTES,
      maxBulkRequests: e.MAX_BULK_REQUESTS,
    },
    logLevel: e.LOG_LEVEL,
    resultTtlSeconds: e.RESULT_TTL_SECONDS,
    maxWaitSeconds: e.MAX_WAIT_SECONDS,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    keepAliveTimeoutMs: e.KEEP_ALIVE_TIMEOUT_MS,
    jobAttempts: e.JOB_ATTEMPTS,
    limits: {
      maxQueueDepth: e.MAX_QUEUE_DEPTH,
      rateLimitPerSecond: e.RATE_LIMIT_PER_SECOND,
      // One second's worth by default: a steady client never notices the bucket.
      rateLimitBurst: e.RATE_LIMIT_BURST ?? Math.max(1, Math.ceil(e.RATE_LIMIT_PER_SECOND)),
      idempotencyTtlSeconds: e.IDEMPOTENCY_TTL_SECONDS,
    },
    webhooks: {
      secret: e.WEBHOOK_SECRET,
      allowHosts: e.WEBHOOK_ALLOW_HOSTS,
      allowCidrs: e.WEBHOOK_ALLOW_CIDRS,
      maxAttempts: e.WEBHOOK_MAX_ATTEMPTS,
      retryBaseMs: e.WEBHOOK_RETRY_BASE_MS,
      retryMaxMs: e.WEBHOOK_RETRY_MAX_MS,
      timeoutMs: e.WEBHOOK_TIMEOUT_MS,
    },
    tracing: tracingOf(e),
  };
}

/** Tracing is on when an OTLP endpoint is set, unless OTEL_SDK_DISABLED says otherwise. */
function tracingOf(e: z.infer<typeof EnvSchema>): TracingConfig | undefined {
  const tracesUrl = tracesUrlOf(e.OTEL_EXPORTER_OTLP_ENDPOINT, e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  if (tracesUrl === undefined || e.OTEL_SDK_DISABLED) return undefined;
  return { tracesUrl, serviceName: e.OTEL_SERVICE_NAME, exportDelayMs: e.OTEL_BSP_SCHEDULE_DELAY };
}

/** ADMIN_TENANTS must name tenants of API_KEYS; ADMIN_KEY must be no tenant's key (it would be both). */
function checkAdmin(
  key: string | undefined,
  tenants: readonly string[],
  apiKeys: ReadonlyMap<string, string> | undefined,
): void {
  const known = new Set(apiKeys?.values());
  const unknown = tenants.filter((tenant) => !known.has(tenant));
  if (unknown.length > 0) {
    throw new ConfigError([
      {
        variable: 'ADMIN_TENANTS',
        message: `names no tenant of API_KEYS: ${unknown.map((t) => `"${t}"`).join(', ')}`,
      },
    ]);
  }
  if (key !== undefined && apiKeys?.has(key)) {
    throw new ConfigError([{ variable: 'ADMIN_KEY', message: 'must differ from every API_KEYS key' }]);
  }
}

/**
 * Where the processes' Redis is: the cluster (`REDIS_CLUSTER_NODES`) or the URL (`REDIS_URL`);
 * undefined when neither is set. The shape `createRedisConnection` takes.
 */
export function redisTarget(config: Config): string | RedisClusterConfig | undefined {
  return config.redisCluster ?? config.redisUrl;
}

/**
 * `loadConfig` for a process entry point: a bad environment prints one line naming the variable
 * (`inferq: invalid configuration: PORT: ...`) to stderr and exits 1, before anything else starts.
 */
export function loadConfigOrExit(
  env: Record<string, string | undefined> = process.env,
  options: LoadConfigOptions = {},
): Config {
  try {
    return loadConfig(env, options);
  } catch (error: unknown) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`inferq: ${error.message}\n`);
    process.exit(1);
  }
}

/** The settings worth logging at start-up: everything except secrets. */
export function describeConfig(config: Config): Record<string, unknown> {
  return {
    redis:
      config.redisCluster !== undefined
        ? `cluster ${config.redisCluster.nodes.map((n) => `${n.host}:${n.port}`).join(',')}`
        : config.redisUrl === undefined
          ? 'unset'
          : redactUrl(config.redisUrl),
    modelRepository: config.modelRepository,
    models: config.models ?? 'all',
    repositoryPollSeconds: config.repositoryPollSeconds,
    waitForCapacity: config.waitForCapacity,
    host: config.host,
    port: config.port,
    metricsPort: config.metricsPort,
    auth: config.apiKeys === undefined ? 'open' : `${new Set(config.apiKeys.values()).size} tenant(s)`,
    admin: {
      key: config.admin.key === undefined ? 'unset' : 'set',
      tenants: config.admin.tenants,
    },
    queuePrefix: config.queuePrefix,
    queueBackend: config.queueBackend,
    maxBodyBytes: config.maxBodyBytes,
    caps: config.caps,
    logLevel: config.logLevel,
    resultTtlSeconds: config.resultTtlSeconds,
    maxWaitSeconds: config.maxWaitSeconds,
    shutdownGraceMs: config.shutdownGraceMs,
    keepAliveTimeoutMs: config.keepAliveTimeoutMs,
    jobAttempts: config.jobAttempts,
    limits: config.limits,
    webhooks: {
      signing: config.webhooks.secret === undefined ? 'off (callback.url refused)' : 'on',
      allowHosts: config.webhooks.allowHosts,
      allowCidrs: config.webhooks.allowCidrs,
      maxAttempts: config.webhooks.maxAttempts,
      retryBaseMs: config.webhooks.retryBaseMs,
      retryMaxMs: config.webhooks.retryMaxMs,
      timeoutMs: config.webhooks.timeoutMs,
    },
    tracing:
      config.tracing === undefined
        ? 'off'
        : {
            tracesUrl: redactUrl(config.tracing.tracesUrl),
            serviceName: config.tracing.serviceName ?? 'the process default',
            exportDelayMs: config.tracing.exportDelayMs,
          },
  };
}

function redactUrl(value: string): string {
  const url = new URL(value);
  if (url.password !== '') url.password = '***';
  return url.toString();
}

/**
 * `<repo root>/models/demo`. The root is found by walking up from this file to the workspace root's
 * package.json, so the answer is the same whether this runs from source or bundled into apps/x/dist.
 */
function defaultModelRepository(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && isWorkspaceRoot(manifest)) return join(dir, 'models', 'demo');
    const parent = dirname(dir);
    if (parent === dir) return resolve('models', 'demo');
    dir = parent;
  }
}

function isWorkspaceRoot(manifest: string): boolean {
  try {
    return 'workspaces' in (JSON.parse(readFileSync(manifest, 'utf8')) as object);
  } catch {
    return false;
  }
}
