/**
 * A processor thread (piscina's worker): runs one processor per task, off the worker's event loop: a
 * built-in, or a module the repository brings (loaded once per path, here only: docs/pipelines.md,
 * "Your own processors"). Bundled as dist/processor-thread.js beside the worker's main.js.
 */
import { pathToFileURL } from 'node:url';
import { BUILTIN_RUNS, type ProcessorResult, type ProcessorRun } from '@inferq/processors';
import type { ProcessorTask } from './processor-pool.ts';

const modules = new Map<string, Promise<ProcessorRun>>();

/** The module's default export (or its `run`), a function of (inputs, options, context). */
async function load(path: string): Promise<ProcessorRun> {
  const loaded = (await import(pathToFileURL(path).href)) as { default?: unknown; run?: unknown };
  const run = typeof loaded.default === 'function' ? loaded.default : loaded.run;
  if (typeof run !== 'function') {
    throw new TypeError(`${path} exports no processor: export a default function (inputs, options, context)`);
  }
  return run as ProcessorRun;
}

export default async function runProcessor(task: ProcessorTask): Promise<ProcessorResult> {
  let run: ProcessorRun | undefined;
  if (task.module !== undefined) {
    let loading = modules.get(task.module);
    if (loading === undefined) {
      loading = load(task.module);
      modules.set(task.module, loading);
      loading.catch(() => modules.delete(task.module!));
    }
    run = await loading;
  } else {
    run = BUILTIN_RUNS.get(task.processor);
  }
  if (run === undefined) throw new Error(`no built-in processor named '${task.processor}'`);
  return run(task.inputs, task.options, { dir: task.dir });
}
