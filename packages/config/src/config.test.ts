import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, describeConfig, loadConfig, loadConfigOrExit } from './config.ts';

const DEFAULT_CAPS = {
  maxElementsPerTensor: 16 * 1024 * 1024,
  maxRank: 8,
  maxDimension: 16 * 1024 * 1024,
  maxStringBytes: 64 * 1024,
  maxInputs: 64,
  maxListElements: 1024 * 1024,
  maxOutputBytes: 16 * 1024 * 1024,
  maxBulkRequests: 64,
};

function issuesOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error: unknown) {
    if (error instanceof ConfigError) return error.issues.map((i) => i.variable);
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('fills every default from an empty environment', () => {
    const config = loadConfig({});
    expect(config).toEqual({
      redisUrl: undefined,
      modelRepository: expect.stringMatching(/\/models\/demo$/),
      models: undefined,
      repositoryPollSeconds: 5,
      waitForCapacity: false,
      host: '0.0.0.0',
      port: 8080,
      metricsPort: 9464,
      apiKeys: undefined,
      admin: { key: undefined, tenants: [] },
      queuePrefix: '{inferq}',
      queueBackend: 'streams',
      maxBodyBytes: 16 * 1024 * 1024,
      caps: DEFAULT_CAPS,
      logLevel: 'info',
      resultTtlSeconds: 86400,
      maxWaitSeconds: 60,
      shutdownGraceMs: 10_000,
      keepAliveTimeoutMs: 5_000,
      jobAttempts: 3,
      limits: {
        maxQueueDepth: 10_000,
        rateLimitPerSecond: 0,
        rateLimitBurst: 1,
        idempotencyTtlSeconds: 86_400,
      },
      webhooks: {
        secret: undefined,
        allowHosts: [],
        allowCidrs: [],
        maxAttempts: 15,
        retryBaseMs: 1_000,
        retryMaxMs: 3_600_000,
        timeoutMs: 10_000,
      },
    });
  });

  it('resolves the default model repository at the workspace root', () => {
    const root = new URL('../../../', import.meta.url).pathname;
    expect(loadConfig({}).modelRepository).toBe(`${root}models/demo`);
  });

  it('treats blank variables as unset', () => {
    expect(loadConfig({ PORT: '', API_KEYS: '  ', REDIS_URL: '' })).toMatchObject({
      port: 8080,
      apiKeys: undefined,
      redisUrl: undefined,
    });
  });

  it('coerces and normalises values', () => {
    const config = loadConfig({
      REDIS_URL: 'rediss://user:pw@redis.example:6380/2',
      MODEL_REPOSITORY: 'relative/models',
      MODELS: ' resnet , ocr-cls,,',
      REPOSITORY_POLL_SECONDS: '0',
      WAIT_FOR_CAPACITY: ' Yes ',
      HOST: '127.0.0.1',
      PORT: ' 0 ',
      METRICS_PORT: '9000',
      API_KEYS: 'acme:k1, globex:k:2',
      ADMIN_KEY: ' admin-key-0123456789 ',
      ADMIN_TENANTS: ' globex ,',
      QUEUE_PREFIX: '{prod}',
      QUEUE_BACKEND: ' BullMQ ',
      MAX_BODY_BYTES: '1024',
      LOG_LEVEL: 'DEBUG',
      RESULT_TTL_SECONDS: '60',
      MAX_WAIT_SECONDS: '5',
      SHUTDOWN_GRACE_MS: '250',
      KEEP_ALIVE_TIMEOUT_MS: '65000',
      JOB_ATTEMPTS: '1',
      MAX_QUEUE_DEPTH: '0',
      RATE_LIMIT_PER_SECOND: ' 2.5 ',
      RATE_LIMIT_BURST: '7',
      IDEMPOTENCY_TTL_SECONDS: '600',
      WEBHOOK_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      WEBHOOK_ALLOW_HOSTS: ' Hooks.Internal. ,localhost',
      WEBHOOK_ALLOW_CIDRS: '10.0.0.0/8, 127.0.0.1, FD00::/8',
      WEBHOOK_MAX_ATTEMPTS: '4',
      WEBHOOK_RETRY_BASE_MS: '10',
      WEBHOOK_RETRY_MAX_MS: '40',
      WEBHOOK_TIMEOUT_MS: '500',
    });
    expect(config).toEqual({
      redisUrl: 'rediss://user:pw@redis.example:6380/2',
      modelRepository: `${process.cwd()}/relative/models`,
      models: ['resnet', 'ocr-cls'],
      repositoryPollSeconds: 0,
      waitForCapacity: true,
      host: '127.0.0.1',
      port: 0,
      metricsPort: 9000,
      apiKeys: new Map([
        ['k1', 'acme'],
        ['k:2', 'globex'],
      ]),
      admin: { key: 'admin-key-0123456789', tenants: ['globex'] },
      queuePrefix: '{prod}',
      queueBackend: 'bullmq',
      maxBodyBytes: 1024,
      caps: DEFAULT_CAPS,
      logLevel: 'debug',
      resultTtlSeconds: 60,
      maxWaitSeconds: 5,
      shutdownGraceMs: 250,
      keepAliveTimeoutMs: 65_000,
      jobAttempts: 1,
      limits: { maxQueueDepth: 0, rateLimitPerSecond: 2.5, rateLimitBurst: 7, idempotencyTtlSeconds: 600 },
      webhooks: {
        secret: new Uint8Array(Buffer.from('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'base64')),
        allowHosts: ['hooks.internal', 'localhost'],
        allowCidrs: ['10.0.0.0/8', '127.0.0.1/32', 'fd00::/8'],
        maxAttempts: 4,
        retryBaseMs: 10,
        retryMaxMs: 40,
        timeoutMs: 500,
      },
    });
  });

  it.each([
    ['REDIS_URL', 'http://localhost:6379'],
    ['REDIS_URL', 'not a url'],
    ['MODELS', ' , '],
    ['MODELS', 'a b'],
    ['PORT', 'abc'],
    ['PORT', '65536'],
    ['PORT', '-1'],
    ['PORT', '80.5'],
    ['METRICS_PORT', 'x'],
    ['API_KEYS', 'no-colon'],
    ['API_KEYS', ':key-without-tenant'],
    ['API_KEYS', 'tenant-without-key:'],
    ['API_KEYS', 'a:same,b:same'],
    ['ADMIN_KEY', 'short'],
    ['ADMIN_KEY', 'sixteen chars but spaced'],
    ['ADMIN_TENANTS', 'ops'],
    ['QUEUE_PREFIX', 'has space'],
    ['QUEUE_BACKEND', 'kafka'],
    ['MAX_BODY_BYTES', '0'],
    ['MAX_BODY_BYTES', '16MiB'],
    ['LOG_LEVEL', 'loud'],
    ['RESULT_TTL_SECONDS', '0'],
    ['MAX_WAIT_SECONDS', '-5'],
    ['SHUTDOWN_GRACE_MS', 'soon'],
    ['KEEP_ALIVE_TIMEOUT_MS', '500'],
    ['KEEP_ALIVE_TIMEOUT_MS', '65s'],
    ['JOB_ATTEMPTS', '0'],
    ['MAX_QUEUE_DEPTH', '-1'],
    ['MAX_QUEUE_DEPTH', '10k'],
    ['RATE_LIMIT_PER_SECOND', '-1'],
    ['RATE_LIMIT_PER_SECOND', '1e3'],
    ['RATE_LIMIT_PER_SECOND', 'fast'],
    ['RATE_LIMIT_BURST', '0'],
    ['RATE_LIMIT_BURST', '2.5'],
    ['IDEMPOTENCY_TTL_SECONDS', '0'],
    ['IDEMPOTENCY_TTL_SECONDS', '1d'],
    ['WEBHOOK_SECRET', 'not base64!'],
    ['WEBHOOK_SECRET', `whsec_${Buffer.alloc(16).toString('base64')}`],
    ['WEBHOOK_SECRET', `whsec_${Buffer.alloc(65).toString('base64')}`],
    ['WEBHOOK_ALLOW_HOSTS', 'good.example,bad_host'],
    ['WEBHOOK_ALLOW_HOSTS', 'http://x.example'],
    ['WEBHOOK_ALLOW_CIDRS', '10.0.0.0/33'],
    ['WEBHOOK_ALLOW_CIDRS', 'fd00::/129'],
    ['WEBHOOK_ALLOW_CIDRS', 'intranet'],
    ['WEBHOOK_ALLOW_CIDRS', '10.0.0.0/8/1'],
    ['WEBHOOK_MAX_ATTEMPTS', '0'],
    ['WEBHOOK_RETRY_BASE_MS', '0'],
    ['WEBHOOK_RETRY_MAX_MS', 'soon'],
    ['WEBHOOK_RETRY_MAX_MS', '999'],
    ['WEBHOOK_TIMEOUT_MS', '50'],
    ['REPOSITORY_POLL_SECONDS', '-1'],
    ['REPOSITORY_POLL_SECONDS', '5s'],
    ['WAIT_FOR_CAPACITY', 'maybe'],
  ])('rejects %s=%j naming the variable', (variable, value) => {
    expect(issuesOf({ [variable]: value })).toEqual([variable]);
  });

  it('decodes WEBHOOK_SECRET with or without its whsec_ prefix', () => {
    const key = Buffer.from('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'base64');
    expect(loadConfig({ WEBHOOK_SECRET: 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' }).webhooks.secret).toEqual(
      new Uint8Array(key),
    );
    expect(key.length).toBe(24);
  });

  it('names every bad variable at once', () => {
    expect(issuesOf({ PORT: 'x', LOG_LEVEL: 'y' })).toEqual(['PORT', 'LOG_LEVEL']);
  });

  it('never echoes secrets in messages', () => {
    expect(() => loadConfig({ API_KEYS: 'acme:supersecret,broken' })).toThrow(
      'invalid configuration: API_KEYS: entry 2 is not tenant:key',
    );
    expect(() => loadConfig({ WEBHOOK_SECRET: 'whsec_hunter2' })).toThrow(
      /^invalid configuration: WEBHOOK_SECRET: expected whsec_ followed by base64 of 24 to 64 random bytes \(openssl rand -base64 32\)$/,
    );
    expect(() => loadConfig({ REDIS_URL: 'http://:hunter2@host' })).toThrow(
      /^invalid configuration: REDIS_URL: expected a redis:\/\/ or rediss:\/\/ URL with a host, or unix:\/\/\/path\/to\/redis\.sock$/,
    );
  });

  it('takes ADMIN_KEY and ADMIN_TENANTS, which name tenants of API_KEYS, never echoing a key', () => {
    const apiKeys = 'ops:k:with:colons,acme:k2,ops:k3';
    expect(loadConfig({ API_KEYS: apiKeys, ADMIN_TENANTS: 'ops' }).admin).toEqual({
      key: undefined,
      tenants: ['ops'],
    });
    expect(() => loadConfig({ API_KEYS: apiKeys, ADMIN_TENANTS: 'ops,sre,k' })).toThrow(
      /^invalid configuration: ADMIN_TENANTS: names no tenant of API_KEYS: "sre", "k"$/,
    );
    // The tenant part of an entry is the name: a key (after the first colon) names no tenant.
    expect(() => loadConfig({ API_KEYS: apiKeys, ADMIN_TENANTS: 'k:with:colons' })).toThrow(
      /ADMIN_TENANTS: names no tenant/,
    );
    expect(() => loadConfig({ ADMIN_TENANTS: 'ops' })).toThrow(/ADMIN_TENANTS: names no tenant/);
    // The admin key opens the admin routes only, so it may not also be a tenant's key.
    const shared = 'shared-key-0123456789';
    expect(() => loadConfig({ API_KEYS: `acme:${shared}`, ADMIN_KEY: shared })).toThrow(
      /^invalid configuration: ADMIN_KEY: must differ from every API_KEYS key$/,
    );
    expect(() => loadConfig({ ADMIN_KEY: 'hunter2' })).toThrow(
      /^invalid configuration: ADMIN_KEY: expected at least 16 characters without whitespace \(openssl rand -base64 32\)$/,
    );
    expect(loadConfig({ ADMIN_KEY: '', ADMIN_TENANTS: ' ' }).admin).toEqual({ key: undefined, tenants: [] });
  });

  it('requires REDIS_URL when asked to', () => {
    expect(() => loadConfig({}, { requireRedisUrl: true })).toThrow(/^invalid configuration: REDIS_URL: /);
    expect(loadConfig({ REDIS_URL: 'redis://h:1' }, { requireRedisUrl: true }).redisUrl).toBe('redis://h:1');
  });

  it('takes a Redis Cluster from REDIS_CLUSTER_NODES, never together with REDIS_URL', () => {
    expect(loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000, [::1]:7001' }).redisCluster).toEqual({
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '::1', port: 7001 },
      ],
      tls: false,
    });
    expect(
      loadConfig({ REDIS_CLUSTER_NODES: 'rediss://u:p%40ss@a:7000,b:7001' }, { requireRedisUrl: true })
        .redisCluster,
    ).toEqual({
      nodes: [
        { host: 'a', port: 7000 },
        { host: 'b', port: 7001 },
      ],
      username: 'u',
      password: 'p@ss',
      tls: true,
    });
    expect(describeConfig(loadConfig({ REDIS_CLUSTER_NODES: 'rediss://u:secret@a:7000' })).redis).toBe(
      'cluster a:7000',
    );
    expect(() => loadConfig({ REDIS_URL: 'redis://h:1', REDIS_CLUSTER_NODES: 'a:7000' })).toThrow(
      /^invalid configuration: REDIS_CLUSTER_NODES: set either REDIS_URL \(one Redis\) or REDIS_CLUSTER_NODES, not both$/,
    );
    for (const bad of [
      'a',
      'a:0',
      'a:70000',
      'http://a:7000',
      'redis://a:7000/2',
      ',',
      'redis://:x@a:1,redis://:y@b:2',
    ]) {
      expect(() => loadConfig({ REDIS_CLUSTER_NODES: bad })).toThrow(
        /^invalid configuration: REDIS_CLUSTER_NODES: /,
      );
    }
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'redis://:hunter2@a' })).toThrow(
      'invalid configuration: REDIS_CLUSTER_NODES: expected host:port or redis[s]://host:port entries, comma separated; "redis://:***@a" is not one',
    );
  });

  it('takes a unix socket path as REDIS_URL, and refuses one with a host or without a path', () => {
    expect(loadConfig({ REDIS_URL: 'unix:///run/redis/redis.sock' }).redisUrl).toBe(
      'unix:///run/redis/redis.sock',
    );
    for (const bad of ['unix://host/run/redis.sock', 'unix:///', 'unix:']) {
      expect(() => loadConfig({ REDIS_URL: bad })).toThrow(/^invalid configuration: REDIS_URL: /);
    }
  });

  it('describes the configuration without secrets', () => {
    const described = describeConfig(
      loadConfig({ REDIS_URL: 'redis://:hunter2@h:1', API_KEYS: 'a:k1,a:k2,b:k3' }),
    );
    expect(described).toMatchObject({ redis: 'redis://:***@h:1', auth: '2 tenant(s)' });
    expect(JSON.stringify(described)).not.toMatch(/hunter2|k1|k2|k3/);
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const withSecret = describeConfig(loadConfig({ WEBHOOK_SECRET: secret }));
    expect(withSecret.webhooks).toMatchObject({ signing: 'on' });
    expect(JSON.stringify(withSecret)).not.toMatch(/MfKQ9r8G/);
    const admin = 'admin-hunter2-0123456789';
    const withAdmin = describeConfig(
      loadConfig({ API_KEYS: 'ops:k1', ADMIN_KEY: admin, ADMIN_TENANTS: 'ops' }),
    );
    expect(withAdmin.admin).toEqual({ key: 'set', tenants: ['ops'] });
    expect(JSON.stringify(withAdmin)).not.toMatch(/hunter2/);
    expect(describeConfig(loadConfig({})).admin).toEqual({ key: 'unset', tenants: [] });
  });
});

describe('loadConfigOrExit', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('prints one line naming the variable and exits 1', () => {
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const exit = vi.spyOn(process, 'exit').mockImplementation((code) => {
      throw new Error(`exit ${code}`);
    });
    expect(() => loadConfigOrExit({ PORT: 'abc' })).toThrow('exit 1');
    expect(exit).toHaveBeenCalledWith(1);
    expect(write).toHaveBeenCalledTimes(1);
    expect(write).toHaveBeenCalledWith(
      'inferq: invalid configuration: PORT: expected an integer from 0 to 65535 (got "abc")\n',
    );
  });

  it('returns the configuration when the environment is valid', () => {
    expect(loadConfigOrExit({ PORT: '1234' }).port).toBe(1234);
  });
});

describe('request caps', () => {
  it('reads each cap from its variable', () => {
    expect(
      loadConfig({
        MAX_TENSOR_ELEMENTS: '1000',
        MAX_TENSOR_RANK: '4',
        MAX_DIMENSION: '500',
        MAX_STRING_BYTES: '256',
        MAX_INPUTS: '3',
        MAX_LIST_ELEMENTS: '0',
        MAX_OUTPUT_BYTES: '4096',
        MAX_BULK_REQUESTS: '10',
      }).caps,
    ).toEqual({
      maxElementsPerTensor: 1000,
      maxRank: 4,
      maxDimension: 500,
      maxStringBytes: 256,
      maxInputs: 3,
      maxListElements: 0,
      maxOutputBytes: 4096,
      maxBulkRequests: 10,
    });
  });

  it.each([
    ['MAX_TENSOR_ELEMENTS', '0'],
    ['MAX_TENSOR_ELEMENTS', '1e6'],
    ['MAX_TENSOR_RANK', '0'],
    ['MAX_TENSOR_RANK', '65'],
    ['MAX_DIMENSION', '-1'],
    ['MAX_STRING_BYTES', 'big'],
    ['MAX_INPUTS', '0'],
    ['MAX_INPUTS', '4097'],
    ['MAX_LIST_ELEMENTS', '-1'],
    ['MAX_OUTPUT_BYTES', String(512 * 1024 * 1024 + 1)],
    ['MAX_BULK_REQUESTS', '0'],
  ])('rejects %s=%j naming the variable', (variable, value) => {
    expect(issuesOf({ [variable]: value })).toEqual([variable]);
  });

  it('are logged at start-up', () => {
    expect(describeConfig(loadConfig({ MAX_INPUTS: '5' })).caps).toEqual({ ...DEFAULT_CAPS, maxInputs: 5 });
  });
});

describe('tracing settings (OTEL_*)', () => {
  it('are off without an OTLP endpoint', () => {
    expect(loadConfig({ OTEL_SERVICE_NAME: 'svc' }).tracing).toBeUndefined();
    expect(describeConfig(loadConfig({})).tracing).toBe('off');
  });

  it('append v1/traces to OTEL_EXPORTER_OTLP_ENDPOINT, as the OpenTelemetry exporter specification says', () => {
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).tracing).toEqual({
      tracesUrl: 'http://collector:4318/v1/traces',
      serviceName: undefined,
      exportDelayMs: 5_000,
    });
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otel.example/base/' }).tracing?.tracesUrl).toBe(
      'https://otel.example/base/v1/traces',
    );
  });

  it('take OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is, before the base endpoint', () => {
    const config = loadConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces.example:9999/custom',
      OTEL_SERVICE_NAME: ' inferq-eu ',
      OTEL_BSP_SCHEDULE_DELAY: '200',
    });
    expect(config.tracing).toEqual({
      tracesUrl: 'http://traces.example:9999/custom',
      serviceName: 'inferq-eu',
      exportDelayMs: 200,
    });
    expect(describeConfig(config).tracing).toEqual({
      tracesUrl: 'http://traces.example:9999/custom',
      serviceName: 'inferq-eu',
      exportDelayMs: 200,
    });
  });

  it('are off with OTEL_SDK_DISABLED=true even with an endpoint', () => {
    expect(
      loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }).tracing,
    ).toBeUndefined();
  });

  it('never show an endpoint password', () => {
    const described = describeConfig(
      loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://user:hunter2@otel.example' }),
    );
    expect(JSON.stringify(described)).not.toContain('hunter2');
    const issue = (() => {
      try {
        loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://user:hunter2@otel.example' });
      } catch (error) {
        return (error as ConfigError).message;
      }
      return '';
    })();
    expect(issue).toBe(
      'invalid configuration: OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:// or https:// URL with a host',
    );
  });

  it.each([
    ['OTEL_EXPORTER_OTLP_ENDPOINT', 'collector:4318'],
    ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'grpc://collector:4317'],
    ['OTEL_EXPORTER_OTLP_PROTOCOL', 'grpc'],
    ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'thrift'],
    ['OTEL_SDK_DISABLED', 'perhaps'],
    ['OTEL_BSP_SCHEDULE_DELAY', '0'],
  ])('rejects %s=%j naming the variable', (variable, value) => {
    expect(issuesOf({ [variable]: value })).toEqual([variable]);
  });
});
