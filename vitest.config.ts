import { defineConfig, type TestProjectInlineConfiguration } from 'vitest/config';

// Five suites: pure units beside the source, integration against a real redis-server that the
// suite starts on a free port (test/helpers/global-redis.ts), and end-to-end tests that start the
// built processes the way the README does and talk HTTP, fault tests that crash, restart and
// signal those processes under load, and the conformance suite (ONNX's node tests through inferq).
// The integration, end-to-end and fault suites run once per queue backend (QUEUE_BACKEND, which
// test/helpers/queue-backend.ts reads and the processes the tests start inherit): the bullmq ones
// after the others (groupOrder), so the machine carries one backend's fault tests at a time.
const QUEUE_BACKENDS = ['streams', 'bullmq'] as const;

function perBackend(project: TestProjectInlineConfiguration): TestProjectInlineConfiguration[] {
  return QUEUE_BACKENDS.map((backend) => ({
    test: {
      ...project.test,
      name: backend === 'streams' ? project.test?.name : `${project.test?.name}-${backend}`,
      env: { QUEUE_BACKEND: backend },
      sequence: { groupOrder: backend === 'streams' ? 0 : 1 },
    },
  }));
}

export default defineConfig({
  test: {
    reporters: ['default', './test/helpers/summary-reporter.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts', 'apps/*/src/**/*.test.ts', 'bench/**/*.test.ts'],
        },
      },
      {
        // deploy/ checked with real validators: Kubernetes and KEDA schemas, promtool, the Compose
        // schema, and the dashboard's and rules' metrics against the code (deploy/README.md).
        test: {
          name: 'deploy',
          include: ['test/deploy/**/*.test.ts'],
          testTimeout: 60_000,
        },
      },
      ...perBackend({
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/helpers/global-redis.ts'],
          // Every answer from an API the suite starts is checked against its OpenAPI document.
          setupFiles: ['test/helpers/openapi-answers.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      }),
      ...perBackend({
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      }),
      // Crashes, restarts and signals against real processes (README "Reliability"): one file at a
      // time, since each one loads the machine and times recovery windows of several seconds.
      ...perBackend({
        test: {
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      }),
      {
        // Issue 10 item 6: every case of ONNX's node tests (Debian's libonnx-testdata) served by
        // `inferq serve` and compared with onnxruntime-node run directly (docs/conformance.md).
        test: {
          name: 'conformance',
          include: ['test/conformance/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 300_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
