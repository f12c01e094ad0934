/**
 * A model version's onnxruntime session, placed on a worker thread or on the main thread (and the
 * cheap probe that chooses). One file, a little over the usual size: both placements share the run
 * queue, the warm-up and the close semantics, which must not drift apart.
 */
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Tensor, TensorData, TensorMap } from '@inferq/protocol';
import type { ModelVersion, SessionPlacement } from '@inferq/repository';
import type { InferenceSession } from 'onnxruntime-node';
import { elementsOf } from './dtypes.ts';
import { errorMessage, type OrtSessionSettings, openOrtSession, runOrtSession } from './ort-session.mjs';
import { allocateOwned, batchRows, isExclusivelyOwned, stackInputs } from './stacking.ts';

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

/**
 * An `auto` model whose file is at most this size is probed on the main thread, where opening costs
 * what `main` costs; a bigger one is probed in its thread. A thread start loads onnxruntime's binding
 * anew (~160 ms on 2 cores), which dominated start-up for repositories of many small models, while
 * loading 1 MiB of weights a second time when a small model turns out slow costs a few milliseconds.
 * Bigger files are mostly models whose runs take milliseconds (they end up on a thread anyway), and
 * probing them there never blocks the event loop for their runs nor loads their weights twice.
 */
export const MAIN_THREAD_PROBE_MAX_BYTES = 1024 * 1024;

/**
 * A probe run on the main thread this long ends the probe at once: the model moves to a thread
 * without blocking the event loop for the remaining runs.
 */
const MAIN_THREAD_PROBE_ABORT_MS = 20;

/**
 * onnxruntime's vectorised CPU kernels round differently when an input does not start on a 16-byte
 * boundary (measured: a ReduceLogSum gives another last bit at offsets 4, 8 and 12 mod 16, the same
 * at 0, 16, 32 and 48), so a request's tensors, views into its payload at any offset, are copied
 * to a fresh buffer (malloc'd: 16-byte aligned) when misaligned: its result never depends on where
 * its bytes sat, alone or stacked into a batch.
 */
const INPUT_ALIGNMENT = 16;

function alignedInputs(inputs: TensorMap): TensorMap {
  let copied: TensorMap | undefined;
  for (const [name, tensor] of Object.entries(inputs)) {
    const { data } = tensor;
    if (Array.isArray(data) || data.byteOffset % INPUT_ALIGNMENT === 0) continue;
    copied ??= { ...inputs };
    copied[name] = { dtype: tensor.dtype, shape: tensor.shape, data: data.slice() as TensorData };
  }
  return copied ?? inputs;
}

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
   * says. `auto` times its warm-up batch (warmup()) and runs it on the main thread when that takes
   * less than MAIN_THREAD_MAX_RUN_MS, else in a thread: a file of at most
   * MAIN_THREAD_PROBE_MAX_BYTES is opened and timed on the main thread first, a bigger one in its
   * thread. A model whose warm-up fails is placed in a thread, where any model can run.
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
    if (placement === 'auto' && statSync(version.path).size <= MAIN_THREAD_PROBE_MAX_BYTES) {
      const main = new ModelSession(version, await MainThreadBackend.open(settings), 'main');
      if (await main.#runsFast(MAIN_THREAD_PROBE_ABORT_MS)) return main;
      await main.close();
      return new ModelSession(version, await ThreadBackend.open(settings), 'thread');
    }
    const threaded = new ModelSession(version, await ThreadBackend.open(settings), 'thread');
    if (placement === 'thread' || !(await threaded.#runsFast(Number.POSITIVE_INFINITY))) return threaded;
    await threaded.close();
    return new ModelSession(version, await MainThreadBackend.open(settings), 'main');
  }

  /**
   * Whether one of PLACEMENT_PROBE_RUNS warm-up runs takes under MAIN_THREAD_MAX_RUN_MS; false at
   * once when one takes `abortMs` or more, or fails (its real inputs will tell).
   */
  async #runsFast(abortMs: number): Promise<boolean> {
    try {
      for (let run = 0; run < PLACEMENT_PROBE_RUNS; run++) {
        const { inferMs } = await this.warmup();
        if (inferMs < MAIN_THREAD_MAX_RUN_MS) return true;
        if (inferMs >= abortMs) return false;
      }
    } catch {
      return false;
    }
    return false;
  }

  /**
   * Runs the model once. On a thread, buffers allocated by stackInputs (or warmup) are moved to it,
   * not copied, and are unusable here afterwards; any other input is copied. On the main thread, an
   * input not 16-byte aligned is copied (INPUT_ALIGNMENT). Outputs are owned by the caller. Rejects with onnxruntime's message when the model refuses the inputs.
   */
  run(inputs: TensorMap, outputNames?: string[]): Promise<SessionRunResult> {
    return this.#backend.run(inputs, outputNames);
  }

  /**
   * Runs the warm-up batch once, so that the first real request does not pay for lazy
   * initialisation. With a sample (by default the version's warm-up sample file): its inputs, and
   * for a model that batches, the sample stacked as many times as fit in maxBatchSize rows (at least
   * once), the largest batch of its shape the batcher forms. Without: zeros shaped like the
   * signature (dynamic dims 1, the batch axis at maxBatchSize when the model batches). `rows`
   * (default maxBatchSize) sizes the batch instead: the cost model times each size this way.
   */
  async warmup(
    sample: TensorMap | undefined = this.version.warmupSample?.inputs,
    rows: number = this.version.config.maxBatchSize,
  ): Promise<SessionRunResult> {
    const { signature, config } = this.version;
    if (sample !== undefined) {
      const names = signature.inputs.map((spec) => spec.name);
      if (config.maxBatchSize <= 0 || names.length === 0) return this.run(sample);
      const copies = Math.max(1, Math.floor(rows / batchRows(sample)));
      return this.run(
        stackInputs(
          Array.from({ length: copies }, () => sample),
          names,
        ),
      );
    }
    const inputs: TensorMap = {};
    for (const spec of signature.inputs) {
      const shape = spec.shape.map((dim, axis) => {
        if (dim !== -1) return dim;
        return axis === 0 && config.maxBatchSize > 0 ? rows : 1;
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
      let data = tensor.data;
      if (!Array.isArray(data)) {
        // Cloning a view clones its whole buffer (a request's payload) at the same, maybe misaligned,
        // offset: a copy of the view alone, moved, costs less and starts aligned (INPUT_ALIGNMENT).
        if (!isExclusivelyOwned(data)) data = data.slice() as TensorData;
        const buffer = (data as Exclude<TensorData, string[]>).buffer;
        if (buffer instanceof ArrayBuffer && !transferList.includes(buffer)) transferList.push(buffer);
      }
      plainInputs[name] = { dtype: tensor.dtype, shape: tensor.shape, data };
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
        return (await runOrtSession(this.#session, alignedInputs(inputs), outputNames)) as SessionRunResult;
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
