import { UnprocessableError } from './errors.ts';
import type { ModelSignature, TensorMap } from './types.ts';

/**
 * What a worker's batcher needs of a request before it reads the payload: the rows the request adds to
 * a batch (its inputs' shared first axis) and each input's dims after the first, in the signature's
 * input order. The API works it out from the validated inputs and it travels with the queue entry.
 */
export interface BatchShape {
  rows: number;
  /** Per input of the signature, in its order: the dims after the batch axis. */
  dims: number[][];
}

/**
 * The batch shape of inputs already validated against `signature` (every input present, ranks as the
 * signature's). Throws UnprocessableError (422) when the inputs disagree on their first axis: the
 * rows of one request cannot be told apart.
 */
export function batchShapeOf(inputs: TensorMap, signature: ModelSignature): BatchShape {
  let rows: number | undefined;
  const dims = signature.inputs.map((spec) => {
    const shape = inputs[spec.name]?.shape ?? [];
    const first = shape[0];
    if (first === undefined) {
      throw new UnprocessableError(`input '${spec.name}' is a scalar: a batched model needs a batch axis`);
    }
    if (rows !== undefined && first !== rows) {
      throw new UnprocessableError(
        `inputs disagree on the batch axis (axis 0): '${spec.name}' has ${first} rows, the inputs before it ${rows}`,
      );
    }
    rows = first;
    return shape.slice(1);
  });
  return { rows: rows ?? 0, dims };
}

/**
 * The batch shape a request to a model of `signature` and `maxBatchSize` travels with in its queue
 * entry (`formatBatchShape`), or undefined for a model that does not batch (maxBatchSize 0): the API,
 * a producer's job checked by the worker and a pipeline's model step all submit it so.
 */
export function requestBatchShape(
  inputs: TensorMap,
  signature: ModelSignature,
  maxBatchSize: number,
): string | undefined {
  return maxBatchSize === 0 ? undefined : formatBatchShape(batchShapeOf(inputs, signature));
}

/** `rows;dims;dims…`, each dims comma-separated: `1;3,48,160` for one input of shape [1, 3, 48, 160]. */
export function formatBatchShape(shape: BatchShape): string {
  return [String(shape.rows), ...shape.dims.map((dims) => dims.join(','))].join(';');
}

/** The batch shape `formatBatchShape` wrote for a model of `inputCount` inputs; undefined if it is not one. */
export function parseBatchShape(text: string, inputCount: number): BatchShape | undefined {
  const parts = text.split(';');
  if (parts.length !== inputCount + 1) return undefined;
  const count = (value: string): number | undefined => (/^\d+$/.test(value) ? Number(value) : undefined);
  const rows = count(parts[0]!);
  if (rows === undefined) return undefined;
  const dims: number[][] = [];
  for (const part of parts.slice(1)) {
    const values = part === '' ? [] : part.split(',').map(count);
    if (values.some((value) => value === undefined)) return undefined;
    dims.push(values as number[]);
  }
  return { rows, dims };
}
