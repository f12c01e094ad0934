// The worker_threads side of ModelSession (session.ts): owns one onnxruntime-node InferenceSession,
// whose run() blocks the thread it is called on, so the main thread stays free for Redis.
//
// Plain JavaScript on purpose: the same file runs from source under vitest (a worker thread does not
// go through vitest's TypeScript transform) and, bundled by esbuild, next to the worker app's bundle.
// It imports only npm packages and ort-session.mjs, never workspace sources.
//
// Messages in:  { type: 'run', id, inputs: { name: { dtype, shape, data } }, outputNames? } | { type: 'close' }
// Messages out: { type: 'ready', executionProvider } | { type: 'open-failed', message }
//               { type: 'result', id, outputs, inferMs } | { type: 'result', id, error }
//               { type: 'closed' }
import { parentPort, workerData } from 'node:worker_threads';
import { errorMessage, openOrtSession, runOrtSession } from './ort-session.mjs';

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
    const { outputs, inferMs } = await runOrtSession(session, inputs, outputNames);
    const transferList = [];
    for (const tensor of Object.values(outputs)) tensor.data = transferable(tensor.data, transferList);
    parentPort.postMessage({ type: 'result', id, outputs, inferMs }, transferList);
  } catch (error) {
    parentPort.postMessage({ type: 'result', id, error: errorMessage(error) });
  }
}

let opened;
try {
  opened = await openOrtSession(workerData);
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
