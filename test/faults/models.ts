// Models the fault tests serve: one slow enough that a worker is caught holding a batch, one that
// throws for some inputs only. Both have outputs a test can compute by hand.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeModel } from '../helpers/onnx-models.ts';

/** Rows of the poison model's table: an index outside [-POISON_TABLE_ROWS, POISON_TABLE_ROWS - 1] throws. */
export const POISON_TABLE_ROWS = 16;
/** An index the poison model cannot gather: onnxruntime fails the whole run it is part of. */
export const POISON_INDEX = 1000;

/** Width of the slow model's rows. */
export const SLOW_WIDTH = 1024;

/**
 * x float32 [N, width] -> y = x, through `depth` MatMuls with the identity matrix: exact (every
 * product is x·1 or x·0) yet a real GEMM each time, so a batch takes measurable time on a CPU.
 */
export function writeSlowIdentityModel(path: string, width: number, depth: number): string {
  const identity = new Array<number>(width * width).fill(0);
  for (let i = 0; i < width; i++) identity[i * width + i] = 1;
  const nodes = Array.from({ length: depth }, (_, i) => ({
    op: 'MatMul',
    inputs: [i === 0 ? 'x' : `h${i}`, 'identity'],
    outputs: [i === depth - 1 ? 'y' : `h${i + 1}`],
  }));
  return writeModel(
    path,
    {
      inputs: [{ name: 'x', dtype: 'float32', shape: ['N', width] }],
      outputs: [{ name: 'y', dtype: 'float32', shape: ['N', width] }],
      nodes,
      initializers: [{ name: 'identity', dims: [width, width], values: identity }],
    },
    'slow_identity',
  );
}

/**
 * index int64 [N] -> y float32 [N, 2] = table[index], where table[i] = [i, i + 0.5]. Gather checks
 * every index, so a row holding POISON_INDEX makes the run of its whole batch throw.
 */
export function writePoisonModel(path: string): string {
  const table: number[] = [];
  for (let i = 0; i < POISON_TABLE_ROWS; i++) table.push(i, i + 0.5);
  return writeModel(
    path,
    {
      inputs: [{ name: 'index', dtype: 'int64', shape: ['N'] }],
      outputs: [{ name: 'y', dtype: 'float32', shape: ['N', 2] }],
      nodes: [{ op: 'Gather', inputs: ['table', 'index'], outputs: ['y'] }],
      initializers: [{ name: 'table', dims: [POISON_TABLE_ROWS, 2], values: table }],
    },
    'poison',
  );
}

export type FaultModelName = 'slow' | 'poison' | 'fast';

export interface FaultModelOptions {
  /** The models to write (default all): the API's /readyz wants a live worker for each. */
  models?: readonly FaultModelName[];
  /** The slow model's MatMul count: more makes each batch longer. */
  slowDepth?: number;
  slowMaxBatchSize?: number;
}

/**
 * A model repository in a fresh temporary folder: `slow` (slow identity, float32 [N, 1024]), `poison`
 * (Gather, int64 [N]) and `fast` (one identity MatMul, float32 [N, 4]). Every model runs on one
 * onnxruntime thread with its cache off: the tests count runs, and identical inputs must not coalesce.
 */
export function writeFaultModelRepository(options: FaultModelOptions = {}): string {
  const root = mkdtempSync(join(tmpdir(), 'inferq-fault-models-'));
  const wanted = new Set<FaultModelName>(options.models ?? ['slow', 'poison', 'fast']);
  const config = (name: FaultModelName, extra: Record<string, unknown>): void =>
    writeFileSync(
      join(root, name, 'config.json'),
      JSON.stringify({ intraOpThreads: 1, cache: { enabled: false }, ...extra }),
    );
  if (wanted.has('slow')) {
    writeSlowIdentityModel(join(root, 'slow', '1', 'model.onnx'), SLOW_WIDTH, options.slowDepth ?? 300);
    config('slow', { maxBatchSize: options.slowMaxBatchSize ?? 16, maxBatchDelayMs: 5 });
  }
  if (wanted.has('poison')) {
    writePoisonModel(join(root, 'poison', '1', 'model.onnx'));
    config('poison', { maxBatchSize: 16, maxBatchDelayMs: 20 });
  }
  if (wanted.has('fast')) {
    writeSlowIdentityModel(join(root, 'fast', '1', 'model.onnx'), 4, 1);
    config('fast', { maxBatchSize: 32, maxBatchDelayMs: 2 });
  }
  return root;
}
