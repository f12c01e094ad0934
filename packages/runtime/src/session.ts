import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Tensor, TensorMap } from '@inferq/protocol';
import { elementsOf } from './dtypes.ts';
import type { ModelVersion } from './repository.ts';
import { allocateOwned, isExclusivelyOwned } from './stacking.ts';

/**
 * Where the thread script lives. From source (vitest, tsc) it is `session-thread.mjs` beside this file.
 * An app bundled by esbuild has this module inlined into `dist/main.js`, so `import.meta.url` points
 * into dist/: the app's build declares the script as an extra entry point named `session-thread`
 * ({ "in": "../../packages/runtime/src/session-thread.mjs", "out": "session-thread" }), which esbuild
 * writes as `dist/session-thread.js`. A worker thread cannot run TypeScript without a loader, hence
 * a plain `.mjs` file rather than a `.ts` one.
 */
const THREAD_SCRIPT_CANDIDATES = ['./session-thread.mjs', './session-thread.js'];

function threadScriptUrl(): URL {
  for (const candidate of THREAD_SCRIPT_CANDIDATES) {
    const url = new URL(candidate, import.meta.url);
    if (existsSync(url)) return url;
  }
  const here = fileURLToPath(new URL('.', import.meta.url));
  throw new Error(
    `the onnxruntime session thread script is missing: none of ${THREAD_SCRIPT_CANDIDATES.join(', ')} in ${here}`,
  );
}

export interface ModelSessionOptions {
  /** Overrides the model config's intraOpThreads (0 = onnxruntime's default). */
  intraOpThreads?: number;
}

export interface SessionRunResult {
  outputs: TensorMap;
  /** Time onnxruntime spent in run(), measured in the session thread. */
  inferMs: number;
}

type ThreadMessage =
  | { type: 'ready'; executionProvider: string }
  | { type: 'open-failed'; message: string }
  | { type: 'result'; id: number; outputs: TensorMap; inferMs: number; error?: undefined }
  | { type: 'result'; id: number; error: string }
  | { type: 'closed' };

interface PendingRun {
  resolve(result: SessionRunResult): void;
  reject(error: Error): void;
}

/**
 * One onnxruntime-node session of one model version, running in its own worker thread because
 * `session.run()` is a synchronous native call that would otherwise stall the event loop. Runs are
 * executed one at a time in submission order.
 */
export class ModelSession {
  readonly #worker: Worker;
  readonly #pending = new Map<number, PendingRun>();
  #nextRunId = 1;
  #closed: Promise<void> | undefined;
  /** Why the thread can no longer serve runs, once it cannot. */
  #failure: Error | undefined;

  private constructor(
    readonly version: ModelVersion,
    worker: Worker,
    /** The onnxruntime execution provider in use, e.g. 'cpu' or 'cuda'. */
    readonly executionProvider: string,
  ) {
    this.#worker = worker;
    worker.on('message', (message: ThreadMessage) => {
      if (message.type !== 'result') return;
      const pending = this.#pending.get(message.id);
      if (pending === undefined) return;
      this.#pending.delete(message.id);
      if (message.error !== undefined) pending.reject(new Error(message.error));
      else pending.resolve({ outputs: message.outputs, inferMs: message.inferMs });
    });
    worker.on('error', (error) =>
      this.#fail(new Error(`session thread of ${this.#label} failed: ${error.message}`)),
    );
    worker.on('exit', (code) =>
      this.#fail(new Error(`session thread of ${this.#label} exited (code ${code})`)),
    );
  }

  get #label(): string {
    return `${this.version.name}:${this.version.version}`;
  }

  /**
   * Starts a thread, opens the model there with the first execution provider of the config that
   * works (falling back to cpu) and graph optimisation 'all'.
   */
  static async open(version: ModelVersion, options: ModelSessionOptions = {}): Promise<ModelSession> {
    const worker = new Worker(threadScriptUrl(), {
      workerData: {
        modelPath: version.path,
        executionProviders: version.config.executionProviders,
        intraOpThreads: options.intraOpThreads ?? version.config.intraOpThreads,
        spinThreads: version.config.spinThreads,
      },
    });
    const executionProvider = await new Promise<string>((resolve, reject) => {
      const onMessage = (message: ThreadMessage): void => {
        if (message.type === 'ready') {
          cleanup();
          resolve(message.executionProvider);
        } else if (message.type === 'open-failed') {
          cleanup();
          reject(new Error(message.message));
        }
      };
      const onError = (error: Error): void => {
        cleanup();
        reject(error);
      };
      const onExit = (code: number): void => {
        cleanup();
        reject(new Error(`session thread for ${version.path} exited (code ${code}) while opening`));
      };
      const cleanup = (): void => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
    return new ModelSession(version, worker, executionProvider);
  }

  /**
   * Runs the model once. Buffers allocated by stackInputs (or warmup) are moved to the thread, not
   * copied, and are unusable here afterwards; any other input is copied. Outputs arrive as fresh
   * buffers owned by the caller. Rejects with onnxruntime's message when the model refuses the inputs.
   */
  run(inputs: TensorMap, outputNames?: string[]): Promise<SessionRunResult> {
    if (this.#closed !== undefined) return Promise.reject(new Error(`session of ${this.#label} is closed`));
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const id = this.#nextRunId++;
    const transferList: ArrayBuffer[] = [];
    const plainInputs: TensorMap = {};
    for (const [name, tensor] of Object.entries(inputs)) {
      plainInputs[name] = { dtype: tensor.dtype, shape: tensor.shape, data: tensor.data };
      if (isExclusivelyOwned(tensor.data) && !Array.isArray(tensor.data)) {
        const buffer = tensor.data.buffer;
        if (buffer instanceof ArrayBuffer && !transferList.includes(buffer)) transferList.push(buffer);
      }
    }
    return new Promise<SessionRunResult>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ type: 'run', id, inputs: plainInputs, outputNames }, transferList);
    });
  }

  /**
   * Runs once on zeros shaped like the signature (dynamic dims 1, the batch axis at maxBatchSize when
   * the model batches) so that the first real request does not pay for lazy initialisation.
   */
  async warmup(): Promise<void> {
    const { signature, config } = this.version;
    const inputs: TensorMap = {};
    for (const spec of signature.inputs) {
      const shape = spec.shape.map((dim, axis) => {
        if (dim !== -1) return dim;
        return axis === 0 && config.maxBatchSize > 0 ? config.maxBatchSize : 1;
      });
      const tensor: Tensor = { dtype: spec.dtype, shape, data: allocateOwned(spec.dtype, elementsOf(shape)) };
      inputs[spec.name] = tensor;
    }
    await this.run(inputs);
  }

  /** Lets queued runs finish, releases the onnxruntime session and ends the thread. */
  close(): Promise<void> {
    this.#closed ??= this.#shutDown();
    return this.#closed;
  }

  async #shutDown(): Promise<void> {
    if (this.#failure !== undefined) return;
    const exited = new Promise<void>((resolve) => this.#worker.once('exit', () => resolve()));
    this.#worker.postMessage({ type: 'close' });
    await exited;
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }
}
