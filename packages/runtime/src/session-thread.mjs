// The worker_threads side of ModelSession (session.ts): owns one onnxruntime-node InferenceSession,
// whose run() blocks the thread it is called on, so the main thread stays free for Redis.
//
// Plain JavaScript on purpose: the same file runs from source under vitest (a worker thread does not
// go through vitest's TypeScript transform) and, copied or bundled by esbuild, next to the worker
// app's bundle. It imports only npm packages, never workspace sources.
//
// Messages in:  { type: 'run', id, inputs: { name: { dtype, shape, data } }, outputNames? } | { type: 'close' }
// Messages out: { type: 'ready', executionProvider } | { type: 'open-failed', message }
//               { type: 'result', id, outputs, inferMs } | { type: 'result', id, error }
//               { type: 'closed' }
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';

const { modelPath, executionProviders, intraOpThreads, spinThreads } = workerData;

function errorMessage(error) {
  return error instanceof Error ? error.message : String(error);
}

/** Providers in the order asked, unknown to this build skipped, `cpu` appended as the last resort. */
function candidateProviders() {
  const available = new Set(ort.listSupportedBackends().map((backend) => backend.name));
  const candidates = executionProviders.filter((name) => name === 'cpu' || available.has(name));
  if (!candidates.includes('cpu')) candidates.push('cpu');
  return candidates;
}

async function openSession() {
  const failures = [];
  for (const provider of candidateProviders()) {
    try {
      const session = await ort.InferenceSession.create(modelPath, {
        executionProviders: [provider],
        graphOptimizationLevel: 'all',
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

/** A view covering its whole buffer is sent by moving the buffer; anything else is copied first. */
function transferable(data, transferList) {
  if (Array.isArray(data)) return data;
  if (
    data.byteOffset === 0 &&
    data.byteLength === data.buffer.byteLength &&
    !transferList.includes(data.buffer)
  ) {
    transferList.push(data.buffer);
    return data;
  }
  const copy = data.slice();
  transferList.push(copy.buffer);
  return copy;
}

async function run(session, { id, inputs, outputNames }) {
  try {
    const feeds = {};
    for (const [name, tensor] of Object.entries(inputs)) {
      feeds[name] = new ort.Tensor(tensor.dtype, tensor.data, tensor.shape);
    }
    const started = performance.now();
    const results =
      outputNames === undefined ? await session.run(feeds) : await session.run(feeds, outputNames);
    const inferMs = performance.now() - started;
    const outputs = {};
    const transferList = [];
    for (const [name, value] of Object.entries(results)) {
      outputs[name] = {
        dtype: value.type,
        shape: [...value.dims],
        data: transferable(value.data, transferList),
      };
    }
    parentPort.postMessage({ type: 'result', id, outputs, inferMs }, transferList);
  } catch (error) {
    parentPort.postMessage({ type: 'result', id, error: errorMessage(error) });
  }
}

let opened;
try {
  opened = await openSession();
} catch (error) {
  parentPort.postMessage({ type: 'open-failed', message: errorMessage(error) });
  process.exit(1);
}
const { session, provider } = opened;

// One message at a time, in order: a close must never release the session under a queued run.
let queue = Promise.resolve();
parentPort.on('message', (message) => {
  queue = queue.then(async () => {
    if (message.type === 'run') {
      await run(session, message);
    } else if (message.type === 'close') {
      await session.release();
      parentPort.postMessage({ type: 'closed' });
      parentPort.close();
    }
  });
});
parentPort.postMessage({ type: 'ready', executionProvider: provider });
