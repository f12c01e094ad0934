/**
 * Processors run in a pool of threads (piscina), never on the worker's event loop: decoding an image
 * or cropping a page takes milliseconds that the loop owes to Redis and to model batches. Inputs and
 * results cross by structured clone.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { ProcessorResult } from '@inferq/processors';
import type { TensorMap } from '@inferq/protocol';
import { Piscina } from 'piscina';

/** One processor call, as the thread receives it. */
export interface ProcessorTask {
  processor: string;
  inputs: TensorMap;
  options: Record<string, unknown>;
  /** The pipeline version's folder (relative file options). */
  dir: string;
  /** A processor the repository brings: its module's absolute path (absent: a built-in). */
  module?: string;
}

/** The thread script, bundled beside the worker's main.js. */
const THREAD_SCRIPT = './processor-thread.js';

export class ProcessorPool {
  private readonly pool: Piscina<ProcessorTask, ProcessorResult>;

  constructor(threads = Math.max(1, Math.min(4, availableParallelism() - 1))) {
    const script = new URL(THREAD_SCRIPT, import.meta.url);
    if (!existsSync(script)) {
      throw new Error(
        `the processor thread script is missing: ${fileURLToPath(script)} (run the worker from its build, npm run build)`,
      );
    }
    this.pool = new Piscina({
      filename: script.href,
      minThreads: 1,
      maxThreads: threads,
      idleTimeout: 60_000,
    });
  }

  run(task: ProcessorTask, signal: AbortSignal): Promise<ProcessorResult> {
    return this.pool.run(task, { signal });
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }
}
