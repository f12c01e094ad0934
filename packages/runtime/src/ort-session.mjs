// onnxruntime-node session handling shared by both places a session runs: its own worker thread
// (session-thread.mjs) and the worker's main thread (session.ts, for models whose runs take so
// little time that a thread hop would cost more than the run).
//
// Plain JavaScript on purpose: a worker thread does not go through vitest's TypeScript transform, and
// esbuild bundles this file into both the worker app and its session-thread entry.
import { performance } from 'node:perf_hooks';
import ort from 'onnxruntime-node';

/**
 * onnxruntime's own log severity (0 verbose … 4 fatal) for a pino LOG_LEVEL. Every error onnxruntime
 * logs also comes back to us as a thrown error, which the worker logs with the model named, so below
 * `debug` its own lines would only repeat ours (on stderr, looking like a failure when the worker
 * handled it): then only its fatal lines pass. `debug` adds its warnings, `trace` everything.
 * Read from the environment here because this module also runs in session threads.
 */
export function ortLogSeverity(logLevel = process.env.LOG_LEVEL) {
  switch (logLevel?.trim().toLowerCase()) {
    case 'trace':
      return 0;
    case 'debug':
      return 2;
    default:
      return 4;
  }
}

const ORT_LOG_LEVELS = ['verbose', 'info', 'warning', 'error', 'fatal'];
const logSeverityLevel = ortLogSeverity();
// The process-wide logger, used before any session exists; set before the first session is created.
ort.env.logLevel = ORT_LOG_LEVELS[logSeverityLevel];

export function errorMessage(error) {
  return error instanceof Error ? error.message : String(error);
}

/** Providers in the order asked, unknown to this build skipped, `cpu` appended as the last resort. */
function candidateProviders(executionProviders) {
  const available = new Set(ort.listSupportedBackends().map((backend) => backend.name));
  const candidates = executionProviders.filter((name) => name === 'cpu' || available.has(name));
  if (!candidates.includes('cpu')) candidates.push('cpu');
  return candidates;
}

/**
 * Opens `modelPath` with the first execution provider that works, all graph optimisations, and
 * onnxruntime's thread pools told not to spin unless `spinThreads`. Resolves { session, provider }.
 */
export async function openOrtSession({ modelPath, executionProviders, intraOpThreads, spinThreads }) {
  const failures = [];
  for (const provider of candidateProviders(executionProviders)) {
    try {
      const session = await ort.InferenceSession.create(modelPath, {
        executionProviders: [provider],
        graphOptimizationLevel: 'all',
        logSeverityLevel,
        ...(intraOpThreads > 0 ? { intraOpNumThreads: intraOpThreads } : {}),
        // Session config entries (onnxruntime_session_options_config_keys.h), strings as the binding wants.
        extra: {
          session: {
            intra_op: { allow_spinning: spinThreads ? '1' : '0' },
            inter_op: { allow_spinning: spinThreads ? '1' : '0' },
          },
        },
      });
      return { session, provider };
    } catch (error) {
      failures.push(`${provider}: ${errorMessage(error)}`);
    }
  }
  throw new Error(`cannot open ${modelPath}: ${failures.join('; ')}`);
}

/**
 * One run: `inputs` is { name: { dtype, shape, data } }; resolves { outputs, inferMs } with outputs in
 * the same form (data as onnxruntime returned it) and inferMs the time of onnxruntime's native run.
 */
export async function runOrtSession(session, inputs, outputNames) {
  const feeds = {};
  for (const [name, tensor] of Object.entries(inputs)) {
    feeds[name] = new ort.Tensor(tensor.dtype, tensor.data, tensor.shape);
  }
  // onnxruntime-node runs the native call in a setImmediate callback: a timer started here would
  // also count the rest of the event loop's turn (on a busy main thread, or a loaded machine, more
  // than the run itself, which misplaced `auto` models). An immediate queued first starts it just
  // before that callback; the results are wrapped in microtasks right after it.
  let started = performance.now();
  setImmediate(() => {
    started = performance.now();
  });
  const results =
    outputNames === undefined ? await session.run(feeds) : await session.run(feeds, outputNames);
  const inferMs = performance.now() - started;
  const outputs = {};
  for (const [name, value] of Object.entries(results)) {
    outputs[name] = { dtype: value.type, shape: [...value.dims], data: value.data };
  }
  return { outputs, inferMs };
}
