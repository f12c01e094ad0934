/**
 * What `deploy/` ships, checked with real validators (deploy/README.md): the Kubernetes manifests and
 * the KEDA ScaledObjects against their schemas, the environment they set against inferq's own config
 * schema, the Prometheus configuration and alert rules with promtool (its unit tests included), the
 * Grafana dashboard's queries (PromQL through promtool, metrics and labels against the code),
 * docker-compose.yml against the Compose Specification's schema, and the Dockerfile with a linter.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '@inferq/config';
import { MODEL_STATES } from '@inferq/observability';
import { Ajv } from 'ajv';
import { validate as lintDockerfile } from 'dockerfile-utils';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { validateKubernetesObject } from './kubernetes-schemas.ts';
import { metricReferences, metricsInCode, referenceProblem } from './metric-catalog.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const KUBERNETES = join(ROOT, 'deploy/kubernetes');
const PROMETHEUS = join(ROOT, 'deploy/prometheus');
// Debian's prometheus package (installed by .ci/run).
const PROMTOOL = 'promtool';

// biome-ignore lint/suspicious/noExplicitAny: manifests are checked by their schemas, then read freely.
type Manifest = Record<string, any>;

function readYaml(path: string): Manifest {
  return parse(readFileSync(path, 'utf8')) as Manifest;
}

function manifestsOf(file: string): Manifest[] {
  return parseAllDocuments(readFileSync(join(KUBERNETES, file), 'utf8'))
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]?.message}`);
      return doc.toJS() as Manifest | null;
    })
    .filter((doc): doc is Manifest => doc !== null);
}

const manifestFiles = readdirSync(KUBERNETES).filter(
  (file) => file.endsWith('.yaml') && file !== 'kustomization.yaml',
);
const kustomization = readYaml(join(KUBERNETES, 'kustomization.yaml'));
/** What `kubectl apply -k deploy/kubernetes` applies. */
const applied: Manifest[] = (kustomization.resources as string[]).flatMap((file) => manifestsOf(file));
const byKind = (kind: string): Manifest[] => applied.filter((m) => m.kind === kind);
const configMap = byKind('ConfigMap').find((m) => m.metadata.name === 'inferq-config') as Manifest;
const secretExample = manifestsOf('secret.example.yaml')[0] as Manifest;
const workers = byKind('Deployment').filter(
  (d) => d.metadata.labels['app.kubernetes.io/component'] === 'worker',
);
const metrics = metricsInCode(ROOT);

function promtool(...args: string[]): string {
  try {
    return execFileSync(PROMTOOL, args, { cwd: PROMETHEUS, encoding: 'utf8', stdio: 'pipe' });
  } catch (error) {
    const { stdout = '', stderr = '', code } = error as { stdout?: string; stderr?: string; code?: string };
    if (code === 'ENOENT') throw new Error(`${PROMTOOL} not found: install Debian's prometheus package`);
    throw new Error(`promtool ${args.join(' ')} failed:\n${stdout}${stderr}`);
  }
}

/** Each expression must parse as PromQL: promtool checks them as the rules of a scratch file. */
function expectValidPromql(exprs: string[]): void {
  const dir = mkdtempSync(join(tmpdir(), 'inferq-promql-'));
  try {
    const rules = exprs.map((expr, index) => ({ record: `inferq_check:${index}`, expr }));
    writeFileSync(join(dir, 'queries.yml'), JSON.stringify({ groups: [{ name: 'queries', rules }] }));
    expect(promtool('check', 'rules', join(dir, 'queries.yml'))).toContain(
      `SUCCESS: ${exprs.length} rules found`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every metric an expression reads is defined in the code, with the labels it matches on. */
function expectKnownMetrics(exprs: string[]): void {
  const problems = exprs.flatMap((expr) => {
    const references = metricReferences(expr);
    if (references.length === 0) return [`reads no inferq metric: ${expr}`];
    return references.flatMap((reference) => referenceProblem(reference, metrics) ?? []);
  });
  expect(problems).toEqual([]);
}

/** Label values that must be among those the code sets (a typo would select nothing, silently). */
function expectKnownLabelValues(exprs: string[]): void {
  const known: Record<string, readonly string[]> = {
    service: ['api', 'worker'],
    state: MODEL_STATES,
    phase: ['queue', 'batch_wait', 'inference', 'total'],
  };
  const problems = exprs.flatMap((expr) =>
    [...expr.matchAll(/\b(service|state|phase)\s*(=|!=)\s*"([^"]*)"/g)]
      .filter(([, label, , value]) => !(known[label as string] ?? []).includes(value as string))
      .map(([matcher]) => `unknown value in ${matcher}`),
  );
  expect(problems).toEqual([]);
}

function envOf(container: Manifest): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef?.name === 'inferq-config') Object.assign(env, configMap.data);
    else if (source.secretRef?.name === 'inferq-secrets') Object.assign(env, secretExample.stringData);
    else throw new Error(`unknown envFrom source ${JSON.stringify(source)}`);
  }
  for (const variable of container.env ?? []) env[variable.name] = variable.value;
  return env;
}

/** The environment variables inferq reads: the keys of its config schema. */
function configVariables(): Set<string> {
  const source = readFileSync(join(ROOT, 'packages/config/src/config.ts'), 'utf8');
  const schema = /const EnvSchema = z\.object\(\{([\s\S]*?)\n\}\);/.exec(source)?.[1] ?? '';
  return new Set([...schema.matchAll(/^\s{2}([A-Z][A-Z0-9_]*):/gm)].map((match) => match[1] as string));
}

function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

describe('Kubernetes manifests', () => {
  it('are valid against the Kubernetes, KEDA and Prometheus Operator schemas', () => {
    const checked = manifestFiles.flatMap((file) =>
      manifestsOf(file).map((manifest) => {
        const name = `${file}: ${manifest.kind}/${manifest.metadata?.name}`;
        expect(() => validateKubernetesObject(manifest), name).not.toThrow();
        return `${manifest.kind}/${manifest.metadata.name}`;
      }),
    );
    expect(checked.sort()).toEqual(
      [
        'ConfigMap/inferq-config',
        'Deployment/api',
        'Deployment/worker-noop',
        'Deployment/worker-ocr',
        'Namespace/inferq',
        'PodDisruptionBudget/api',
        'PodDisruptionBudget/worker-noop',
        'PodDisruptionBudget/worker-ocr',
        'PodMonitor/inferq-api',
        'PodMonitor/inferq-worker',
        'PrometheusRule/inferq',
        'ScaledObject/worker-noop',
        'ScaledObject/worker-ocr',
        'Secret/inferq-secrets',
        'Service/api',
        'Service/redis',
        'StatefulSet/redis',
      ].sort(),
    );
  });

  it('the validator refuses a malformed object', () => {
    const deployment = structuredClone(byKind('Deployment')[0] as Manifest);
    deployment.spec.template.spec.containers[0].ports[0].containerPort = 'http';
    expect(() => validateKubernetesObject(deployment)).toThrow(/containerPort must be integer/);
    expect(() => validateKubernetesObject({ apiVersion: 'v1', kind: 'Pod' })).toThrow(
      /no schema for v1\/Pod/,
    );
  });

  it('kustomization.yaml applies every manifest but the Secret example and the operator objects', () => {
    expect(kustomization).toMatchObject({ kind: 'Kustomization', namespace: 'inferq' });
    expect([...(kustomization.resources as string[])].sort()).toEqual(
      manifestFiles.filter((file) => !['secret.example.yaml', 'monitoring.yaml'].includes(file)).sort(),
    );
    // The image the Dockerfile builds, under the name docker-compose.yml gives it.
    const compose = readYaml(join(ROOT, 'docker-compose.yml'));
    expect(compose['x-inferq'].image).toBe('inferq:local');
    expect(kustomization.images).toEqual([{ name: 'inferq', newTag: 'local' }]);
  });

  it('set only variables inferq reads, with values its config schema accepts', () => {
    const variables = configVariables();
    expect(variables.has('REDIS_URL') && variables.has('MODELS')).toBe(true);
    const set = [
      ...Object.keys(configMap.data),
      ...Object.keys(secretExample.stringData),
      ...byKind('Deployment')
        .flatMap((d) => d.spec.template.spec.containers.flatMap((c: Manifest) => c.env ?? []))
        .map((v: Manifest) => v.name),
    ];
    expect(set.filter((variable) => !variables.has(variable))).toEqual([]);
    for (const deployment of byKind('Deployment')) {
      const env = envOf(deployment.spec.template.spec.containers[0]);
      expect(() => loadConfig(env, { requireRedisUrl: true }), deployment.metadata.name).not.toThrow();
    }
    // Scale to zero needs requests for a version without a worker accepted (docs/models.md).
    expect(loadConfig(configMap.data).waitForCapacity).toBe(true);
  });

  it('run the built entry points of the image, with probes on named ports', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^EXPOSE 8080 9464$/m);
    expect(dockerfile).toMatch(/^WORKDIR \/app$/m);
    for (const deployment of byKind('Deployment')) {
      const container = deployment.spec.template.spec.containers[0] as Manifest;
      expect(container.image).toBe('inferq:local');
      const [node, entry] = container.command as string[];
      expect(node).toBe('node');
      expect(existsSync(join(ROOT, (entry as string).replace('/dist/main.js', '/src/main.ts')))).toBe(true);
      const ports = (container.ports as Manifest[]).map((port) => port.name);
      for (const probe of [container.livenessProbe, container.readinessProbe]) {
        expect(ports).toContain(probe.httpGet.port);
        expect(['/healthz', '/readyz']).toContain(probe.httpGet.path);
      }
      // A stopping process drains for SHUTDOWN_GRACE_MS; the pod must wait longer before SIGKILL.
      expect(deployment.spec.template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(
        Number(configMap.data.SHUTDOWN_GRACE_MS) + 5_000,
      );
      expect(Object.keys(container.resources.requests).sort()).toEqual(['cpu', 'memory']);
    }
    for (const worker of workers) {
      const [container] = worker.spec.template.spec.containers as Manifest[];
      expect(container?.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
      expect(container?.ports).toEqual([
        { name: 'metrics', containerPort: Number(envOf(container as Manifest).METRICS_PORT) },
      ]);
      // KEDA owns the replica count.
      expect(worker.spec.replicas).toBeUndefined();
    }
  });

  it('give every demo model to exactly one worker group', () => {
    const demoModels = readdirSync(join(ROOT, 'models/demo')).filter((name) =>
      statSync(join(ROOT, 'models/demo', name)).isDirectory(),
    );
    expect(configMap.data.MODEL_REPOSITORY).toBe('/app/models/demo');
    const served = workers.flatMap((w) => envOf(w.spec.template.spec.containers[0]).MODELS?.split(',') ?? []);
    expect([...served].sort()).toEqual([...demoModels].sort());
  });

  it('select their own pods: Services, disruption budgets and StatefulSet', () => {
    const workloads = [...byKind('Deployment'), ...byKind('StatefulSet')];
    for (const workload of workloads) {
      expect(selects(workload.spec.selector.matchLabels, workload.spec.template.metadata.labels)).toBe(true);
    }
    for (const selector of [
      ...byKind('Service').map((s) => s.spec.selector),
      ...byKind('PodDisruptionBudget').map((p) => p.spec.selector.matchLabels),
    ]) {
      const matched = workloads.filter((w) => selects(selector, w.spec.template.metadata.labels));
      expect(matched.length, JSON.stringify(selector)).toBe(1);
    }
  });

  it('run Redis with AOF and noeviction, as the workers require', () => {
    const redis = byKind('StatefulSet')[0] as Manifest;
    const args = (redis.spec.template.spec.containers[0].args as string[]).join(' ');
    expect(args).toContain('--appendonly yes');
    expect(args).toContain('--maxmemory-policy noeviction');
    expect(configMap.data.REDIS_URL).toBe(`redis://${redis.spec.serviceName}:6379`);
  });
});

describe('KEDA ScaledObjects', () => {
  const scaledObjects = byKind('ScaledObject');

  it('scale each worker group from zero on the backlog without capacity and the queue depth of its own models', () => {
    expect(scaledObjects.map((s) => s.spec.scaleTargetRef.name).sort()).toEqual(
      workers.map((w) => w.metadata.name).sort(),
    );
    for (const scaled of scaledObjects) {
      const target = workers.find((w) => w.metadata.name === scaled.spec.scaleTargetRef.name) as Manifest;
      const models = envOf(target.spec.template.spec.containers[0]).MODELS?.split(',').sort();
      expect(scaled.spec.minReplicaCount).toBe(0);
      expect(scaled.spec.triggers.map((t: Manifest) => [t.type, t.name])).toEqual([
        ['prometheus', 'backlog-without-capacity'],
        ['prometheus', 'queue-depth'],
      ]);
      for (const trigger of scaled.spec.triggers as Manifest[]) {
        expect(trigger.metadata.activationThreshold).toBe('0');
        const regex = /model=~"([^"]*)"/.exec(trigger.metadata.query)?.[1];
        expect(regex?.split('|').sort(), `${scaled.metadata.name} ${trigger.name}`).toEqual(models);
      }
      expect(scaled.spec.triggers[0].metadata.query).toContain(
        'inferq_backlog_without_capacity{service="api"',
      );
    }
  });

  it('query metrics the API exports, in valid PromQL', () => {
    const queries = scaledObjects.flatMap((s) =>
      s.spec.triggers.map((t: Manifest) => t.metadata.query as string),
    );
    expectKnownMetrics(queries);
    expectKnownLabelValues(queries);
    expectValidPromql(queries);
  });
});

describe('Prometheus', () => {
  const rules = readYaml(join(PROMETHEUS, 'rules.yml'));
  const ruleExprs = (rules.groups as Manifest[]).flatMap((group) =>
    group.rules.map((rule: Manifest) => rule.expr),
  );

  it('promtool accepts the configuration (with its rule files) and the rules', () => {
    expect(promtool('check', 'config', 'prometheus.yml')).toContain('SUCCESS');
    expect(promtool('check', 'rules', 'rules.yml')).toContain(`SUCCESS: ${ruleExprs.length} rules found`);
  });

  it('the alert rules pass their promtool unit tests', () => {
    expect(promtool('test', 'rules', 'rules.test.yml')).toContain('SUCCESS');
  });

  it('has an alert for each condition the deployment guide names, on metrics the code exports', () => {
    const alerts = (rules.groups as Manifest[]).flatMap((group) =>
      group.rules.map((rule: Manifest) => rule.alert),
    );
    expect(alerts).toEqual([
      'InferqBacklogWithoutCapacity',
      'InferqLatencyObjectiveMissed',
      'InferqModelUnavailable',
      'InferqRedisUnreachable',
      'InferqApiDown',
      'InferqWebhookDeliveriesFailed',
      'InferqWebhookAttemptsFailing',
    ]);
    expectKnownMetrics(ruleExprs);
    expectKnownLabelValues(ruleExprs);
  });

  it('the Prometheus Operator copy of the rules is the same as rules.yml', () => {
    const rule = manifestsOf('monitoring.yaml').find((m) => m.kind === 'PrometheusRule');
    expect(rule?.spec.groups).toEqual(rules.groups);
  });

  it('docker-compose mounts the folder that holds prometheus.yml and its rules', () => {
    const compose = readYaml(join(ROOT, 'docker-compose.yml'));
    expect(compose.services.prometheus.volumes).toEqual(['./deploy/prometheus:/etc/prometheus:ro']);
    expect(readYaml(join(PROMETHEUS, 'prometheus.yml')).rule_files).toEqual(['rules.yml']);
  });
});

describe('Grafana dashboard', () => {
  const dashboard = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/inferq.json'), 'utf8')) as Manifest;
  const panels = (dashboard.panels as Manifest[]).filter((panel) => panel.type !== 'row');
  const exprs = panels.flatMap((panel) =>
    (panel.targets as Manifest[]).map((target) => target.expr as string),
  );

  it('is a dashboard whose panels all query the chosen Prometheus', () => {
    expect(dashboard).toMatchObject({ uid: 'inferq', title: 'inferq', schemaVersion: expect.any(Number) });
    const ids = (dashboard.panels as Manifest[]).map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of panels) {
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, in a plain string.
      expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
    }
    expect(panels.map((panel) => panel.title)).toEqual(
      expect.arrayContaining([
        'Backlog without capacity',
        'Queue depth',
        'Model state',
        'Throughput (succeeded requests/s)',
        'Latency p50 / p99 (total)',
        'Batch size',
        'Cache hit ratio',
        'Latency objective met / missed',
        'HTTP error rate',
        'Webhook deliveries',
      ]),
    );
  });

  it('queries metrics and labels the code exports, in valid PromQL', () => {
    const variables = (dashboard.templating.list as Manifest[])
      .filter((variable) => variable.type === 'query')
      .map((variable) => /^label_values\((.*), \w+\)$/.exec(variable.definition)?.[1] as string);
    expectKnownMetrics([...exprs, ...variables]);
    expectKnownLabelValues(exprs);
    // Grafana's variables, as Grafana would fill them in.
    expectValidPromql(
      [...exprs, ...variables].map((expr) =>
        expr.replaceAll('$__rate_interval', '5m').replaceAll('$model', '.*'),
      ),
    );
  });

  it('shows the latency quantiles from inferq_request_phase_seconds', () => {
    expect(exprs.filter((expr) => expr.includes('inferq_request_phase_seconds_bucket'))).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^histogram_quantile\(0\.5,/),
        expect.stringMatching(/^histogram_quantile\(0\.99,/),
      ]),
    );
  });
});

describe('metric checks', () => {
  it('read the definitions from the code and catch unknown metrics and labels', () => {
    expect(metrics.get('inferq_backlog_without_capacity')).toEqual({
      name: 'inferq_backlog_without_capacity',
      labels: ['model', 'version'],
      histogram: false,
    });
    expect(metrics.get('inferq_webhook_deliveries_total')?.labels).toEqual(['outcome']);
    expect(metrics.get('inferq_request_phase_seconds')?.histogram).toBe(true);
    const problems = [
      'inferq_queue_depht{service="api"}',
      'inferq_queue_depth{version="1"}',
      'inferq_batch_size_bucket{le="4"}',
      'inferq_queue_depth_count',
    ].flatMap((expr) => metricReferences(expr).map((reference) => referenceProblem(reference, metrics)));
    expect(problems).toEqual([
      'inferq_queue_depht is not defined in the code',
      'inferq_queue_depth has no label version',
      undefined,
      'inferq_queue_depth_count: inferq_queue_depth is not a histogram',
    ]);
  });
});

describe('docker-compose.yml', () => {
  it('is valid against the Compose Specification schema', () => {
    // The schema dclint (a Compose linter) ships. Its $schema names draft-07 by an https URL that
    // Ajv knows by its http one; Ajv's default draft is draft-07, so it is compiled as that.
    const require = createRequire(import.meta.url);
    const path = join(dirname(require.resolve('dclint/package.json')), 'schemas/compose.schema.json');
    const { $schema, ...schema } = JSON.parse(readFileSync(path, 'utf8')) as Manifest;
    expect($schema).toBe('https://json-schema.org/draft-07/schema');
    const validateCompose = new Ajv({ allErrors: true, strict: false }).compile(schema);
    const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), {
      merge: true,
    }) as Manifest;
    expect(validateCompose(compose), JSON.stringify(validateCompose.errors)).toBe(true);
    compose.services.api.healthcheck.interval = 10;
    expect(validateCompose(compose)).toBe(false);
  });
});

describe('Dockerfile', () => {
  it('has no lint problems', () => {
    expect(lintDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))).toEqual([]);
    expect(lintDockerfile('FROM node:20\nEXPOSE http\n').map((problem) => problem.message)).toEqual([
      'Invalid containerPort: http',
    ]);
  });
});
