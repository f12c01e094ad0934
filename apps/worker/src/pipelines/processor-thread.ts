/**
 * A processor thread (piscina's worker): runs one built-in processor per task, off the worker's
 * event loop. Bundled as dist/processor-thread.js beside the worker's main.js.
 */
import { BUILTIN_RUNS, type ProcessorResult } from '@inferq/processors';
import type { ProcessorTask } from './processor-pool.ts';

export default async function runProcessor(task: ProcessorTask): Promise<ProcessorResult> {
  const run = BUILTIN_RUNS.get(task.processor);
  if (run === undefined) throw new Error(`no built-in processor named '${task.processor}'`);
  return run(task.inputs, task.options, { dir: task.dir });
}
