import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Tensor, TensorMap } from '@inferq/protocol';
import type { ModelVersion, SessionPlacement } from '@inferq/repository';
import type { InferenceSession } from 'onnxruntime-node';
import { elementsOf } from './dtypes.ts';
import { errorMessage, type OrtSessionSettings, openOrtSession, runOrtSession } from './ort-session.mjs';
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

/**
 * A model placed `auto` runs on the main thread when its warm-up batch (the largest) takes less than
 * this: the hop to a thread and back (two messages, two wake-ups) then costs more than the run, and
 * blocking the event loop for so short a time delays no Redis I/O that matters.
 */
export const MAIN_THREAD_MAX_RUN_MS = 1;

/** Warm-up runs timed to place an `auto` model; the fastest one decides. */
const PLACEMENT_PROBE_RUNS = 3;

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
  /** Overrides the model config's placement. */
  placement?: SessionPlacement;
}

export interface SessionRunResult {
  outputs: TensorMap;
  /** Time onnxruntime spent in run(), measured where the session runs. */
  inferMs: number;
}

/** Where a session's runs happen; what ModelSession delegates to. */
interface SessionBackend {
  readonly executionProvider: string;
  run(inputs: TensorMap, outputNames?: string[]): Promise<SessionRunResult>;
  close(): Promise<void>;
}

/**
 * One onnxruntime-node session of one model version. `session.run()` is a synchronous native call,
 * so a model normally runs in a worker thread of its own, leaving the event loop free for Redis;
 * a model whose runs take well under a millisecond runs on the main thread instead (`placement`).
 * Runs are executed one at a time in submission order.
 */
export class ModelSession {
  readonly #backend: SessionBackend;

  private constructor(
    readonly version: ModelVersion,
    backend: SessionBackend,
    /** Where the runs happen: in a worker thread of their own, or on the main thread. */
    readonly placement: 'thread' | 'main',
  ) {
    this.#backend = backend;
  }

  /** The onnxruntime execution provider in use, e.g. 'cpu' or 'cuda'. */
  get executionProvider(): string {
    return this.#backend.executionProvider;
  }

  /**
   * Opens the model with the first execution provider of the config that works (falling back to
   * cpu) and graph optimisation 'all', in a worker thread or on the main thread as its placement
   * says. `auto` opens it in a thread, times its warm-up batch, and moves it to the main thread
   * when that takes less than MAIN_THREAD_MAX_RUN_MS.
   */
  static async open(version: ModelVersion, options: ModelSessionOptions = {}): Promise<ModelSession> {
    const settings: OrtSessionSettings = {
      modelPath: version.path,
      executionProviders: version.config.executionProviders,
      intraOpThreads: options.intraOpThreads ?? version.config.intraOpThreads,
      spinThreads: version.config.spinThreads,
    };
    const placement = options.placement ?? version.config.placement;
    if (placement === 'main')
      return new ModelSession(version, await MainThreadBackend.open(settings), 'main');
    const threaded = new ModelSession(version, await ThreadBackend.open(settings), 'thread');
    if (placement === 'thread') return threaded;
    let fastest = Number.POSITIVE_INFINITY;
    try {
      for (let run = 0; run < PLACEMENT_PROBE_RUNS; run++) {
        fastest = Math.min(fastest, (await threaded.warmup()).inferMs);
      }
    } catch {
      // A model that refuses zeros is placed where any model can run; its real inputs will tell.
      return threaded;
    }
    if (fastest >= MAIN_THREAD_MAX_RUN_MS) return threaded;
    await threaded.close();
    return new ModelSession(version, await MainThreadBackend.open(settings), 'main');
  }

  /**
   * Runs the model once. On a thread, buffers allocated by stackInputs (or warmup) are moved to it,
   * not copied, and are unusable here afterwards; any other input is copied. Outputs are owned by the
   * caller. Rejects with onnxruntime's message when the model refuses the inputs.
   */
  run(inputs: TensorMap, outputNames?: string[]): Promise<SessionRunResult> {
    return this.#backend.run(inputs, outputNames);
  }

  /**
   * Runs once on zeros shaped like the signature (dynamic dims 1, the batch axis at maxBatchSize when
   * the model batches) so that the first real request does not pay for lazy initialisation.
   */
  async warmup(): Promise<SessionRunResult> {
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
    return this.run(inputs);
  }

  /** Lets queued runs finish and releases the onnxruntime session (and its thread). */
  close(): Promise<void> {
    return this.#backend.close();
  }
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

/** The session in a worker thread of its own (session-thread.mjs), spoken to by messages. */
class ThreadBackend implements SessionBackend {
  readonly #worker: Worker;
  readonly #pending = new Map<number, PendingRun>();
  readonly #label: string;
  #nextRunId = 1;
  #closed: Promise<void> | undefined;
  /** Why the thread can no longer serve runs, once it cannot. */
  #failure: Error | undefined;

  private constructor(
    worker: Worker,
    readonly executionProvider: string,
    label: string,
  ) {
    this.#worker = worker;
    this.#label = label;
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

  static async open(settings: OrtSessionSettings): Promise<ThreadBackend> {
    const worker = new Worker(threadScriptUrl(), { workerData: settings });
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
        reject(new Error(`session thread for ${settings.modelPath} exited (code ${code}) while opening`));
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
    return new ThreadBackend(worker, executionProvider, settings.modelPath);
  }

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

/** The session on the calling (main) thread: each run blocks the event loop for its duration. */
class MainThreadBackend implements SessionBackend {
  readonly #session: InferenceSession;
  /** Runs one after the other, like the thread's message queue: a close never releases under a run. */
  #queue: Promise<unknown> = Promise.resolve();
  #closed: Promise<void> | undefined;

  private constructor(
    session: InferenceSession,
    readonly executionProvider: string,
  ) {
    this.#session = session;
  }

  static async open(settings: OrtSessionSettings): Promise<MainThreadBackend> {
    const { session, provider } = await openOrtSession(settings);
    return new MainThreadBackend(session, provider);
  }

  run(inputs: TensorMap, outputNames?: string[]): Promise<SessionRunResult> {
    if (this.#closed !== undefined) return Promise.reject(new Error('session is closed'));
    const run = this.#queue.then(async () => {
      try {
        return (await runOrtSession(this.#session, inputs, outputNames)) as SessionRunResult;
      } catch (error) {
        throw new Error(errorMessage(error));
      }
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  close(): Promise<void> {
    this.#closed ??= this.#queue.then(() => this.#session.release());
    return this.#closed;
  }
}
