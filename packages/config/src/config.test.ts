import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, describeConfig, loadConfig, loadConfigOrExit } from './config.ts';

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
      host: '0.0.0.0',
      port: 8080,
      metricsPort: 9464,
      apiKeys: undefined,
      queuePrefix: '{inferq}',
      maxBodyBytes: 16 * 1024 * 1024,
      logLevel: 'info',
      resultTtlSeconds: 86400,
      maxWaitSeconds: 60,
      shutdownGraceMs: 10_000,
      jobAttempts: 3,
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
      HOST: '127.0.0.1',
      PORT: ' 0 ',
      METRICS_PORT: '9000',
      API_KEYS: 'acme:k1, globex:k:2',
      QUEUE_PREFIX: '{prod}',
      MAX_BODY_BYTES: '1024',
      LOG_LEVEL: 'DEBUG',
      RESULT_TTL_SECONDS: '60',
      MAX_WAIT_SECONDS: '5',
      SHUTDOWN_GRACE_MS: '250',
      JOB_ATTEMPTS: '1',
    });
    expect(config).toEqual({
      redisUrl: 'rediss://user:pw@redis.example:6380/2',
      modelRepository: `${process.cwd()}/relative/models`,
      models: ['resnet', 'ocr-cls'],
      host: '127.0.0.1',
      port: 0,
      metricsPort: 9000,
      apiKeys: new Map([
        ['k1', 'acme'],
        ['k:2', 'globex'],
      ]),
      queuePrefix: '{prod}',
      maxBodyBytes: 1024,
      logLevel: 'debug',
      resultTtlSeconds: 60,
      maxWaitSeconds: 5,
      shutdownGraceMs: 250,
      jobAttempts: 1,
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
    ['QUEUE_PREFIX', 'has space'],
    ['MAX_BODY_BYTES', '0'],
    ['MAX_BODY_BYTES', '16MiB'],
    ['LOG_LEVEL', 'loud'],
    ['RESULT_TTL_SECONDS', '0'],
    ['MAX_WAIT_SECONDS', '-5'],
    ['SHUTDOWN_GRACE_MS', 'soon'],
    ['JOB_ATTEMPTS', '0'],
  ])('rejects %s=%j naming the variable', (variable, value) => {
    expect(issuesOf({ [variable]: value })).toEqual([variable]);
  });

  it('names every bad variable at once', () => {
    expect(issuesOf({ PORT: 'x', LOG_LEVEL: 'y' })).toEqual(['PORT', 'LOG_LEVEL']);
  });

  it('never echoes secrets in messages', () => {
    expect(() => loadConfig({ API_KEYS: 'acme:supersecret,broken' })).toThrow(
      'invalid configuration: API_KEYS: entry 2 is not tenant:key',
    );
    expect(() => loadConfig({ REDIS_URL: 'http://:hunter2@host' })).toThrow(
      /^invalid configuration: REDIS_URL: expected a redis:\/\/ or rediss:\/\/ URL with a host$/,
    );
  });

  it('requires REDIS_URL when asked to', () => {
    expect(() => loadConfig({}, { requireRedisUrl: true })).toThrow(/^invalid configuration: REDIS_URL: /);
    expect(loadConfig({ REDIS_URL: 'redis://h:1' }, { requireRedisUrl: true }).redisUrl).toBe('redis://h:1');
  });

  it('describes the configuration without secrets', () => {
    const described = describeConfig(
      loadConfig({ REDIS_URL: 'redis://:hunter2@h:1', API_KEYS: 'a:k1,a:k2,b:k3' }),
    );
    expect(described).toMatchObject({ redis: 'redis://:***@h:1', auth: '2 tenant(s)' });
    expect(JSON.stringify(described)).not.toMatch(/hunter2|k1|k2|k3/);
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
