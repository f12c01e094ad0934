/**
 * Runs a validated pipeline (spec.ts) over a request's inputs, with the model and processor calls
 * injected (`StepRuntime`: the worker sends model steps through the model's queue and processors to
 * its thread pool). Steps run in declaration order, one at a time; a per-item step runs all its items
 * at once, so its N model requests are in flight together and the model's worker batches them.
 */
import type { StepTiming, Tensor, TensorMap, TensorSpec } from '@inferq/protocol';
import { concatAxis0, emptyGathered } from './concat.ts';
import { PipelineStepError, PipelineTensorError } from './errors.ts';
import {
  declaredOutput,
  describeStep,
  formatReference,
  type PipelineSpec,
  type Reference,
  type StepSpec,
} from './spec.ts';

export interface ModelStepResult {
  outputs: TensorMap;
  /** What the model request's record says: queue, batch wait and inference time (ms), its batch size. */
  queueMs?: number;
  batchWaitMs?: number;
  inferMs?: number;
  batchSize?: number;
}

export interface StepRuntime {
  /** A fan-out processor returns one TensorMap per item, any other one TensorMap. */
  runProcessor(step: StepSpec, inputs: TensorMap, signal: AbortSignal): Promise<TensorMap | TensorMap[]>;
  runModel(step: StepSpec, inputs: TensorMap, signal: AbortSignal): Promise<ModelStepResult>;
}

/** A step's timing, as the record carries it (`timings.steps`, @inferq/protocol). */
export type { StepTiming };

export interface PipelineResult {
  outputs: TensorMap;
  steps: Record<string, StepTiming>;
}

export interface RunPipelineOptions {
  /** The caller's cancellation: aborts every call in flight and rejects with the signal's reason. */
  signal?: AbortSignal;
  /** A monotonic clock in ms (default `performance.now`). */
  now?: () => number;
  /**
   * The declared spec of a step's output, used only to gather no item (dtype and trailing dims of the
   * empty tensor). Consulted first; when it is absent or answers undefined, the spec stored at parse
   * time serves (processor outputs; model outputs when the file was parsed with a model lookup).
   */
  outputSpecOf?: (step: StepSpec, name: string) => TensorSpec | undefined;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const mean = (values: number[]): number | undefined =>
  values.length === 0 ? undefined : values.reduce((sum, value) => sum + value, 0) / values.length;

/** Checks one result map of `step`: a map holding what the step must produce, with declared dtypes. */
function checkResult(step: StepSpec, value: unknown): TensorMap {
  if (!isRecord(value))
    throw new Error(`${describeStep(step)} returned ${typeof value}, not a map of tensors`);
  // A processor must return every output it declares; a model what the pipeline reads of it.
  const required =
    step.kind === 'processor' ? (step.outputs ?? []).map((output) => output.name) : step.usedOutputs;
  for (const name of required) {
    if (!isRecord(value[name])) throw new Error(`${describeStep(step)} returned no output '${name}'`);
  }
  for (const spec of step.outputs ?? []) {
    const tensor = value[spec.name] as Tensor | undefined;
    if (tensor !== undefined && tensor.dtype !== spec.dtype) {
      throw new Error(
        `${describeStep(step)} returned '${spec.name}' as ${tensor.dtype}, but declares ${spec.dtype}`,
      );
    }
  }
  return value as TensorMap;
}

interface CallResult {
  maps: TensorMap[];
  start: number;
  end: number;
  model?: ModelStepResult;
}

/**
 * Runs `spec` over `inputs` (already validated against `spec.inputs` by the caller; only presence
 * and dtype are checked here). Rejects with PipelineStepError when a call fails, after aborting the
 * calls still in flight; with the signal's reason when `options.signal` aborts; with
 * PipelineTensorError when an input is missing or an output is not of its declared dtype.
 */
export async function runPipeline(
  spec: PipelineSpec,
  inputs: TensorMap,
  runtime: StepRuntime,
  options: RunPipelineOptions = {},
): Promise<PipelineResult> {
  const outer = options.signal;
  outer?.throwIfAborted();
  for (const input of spec.inputs) {
    const tensor = inputs[input.name];
    if (tensor === undefined) {
      throw new PipelineTensorError('input', input.name, `pipeline input '${input.name}' is missing`);
    }
    if (tensor.dtype !== input.dtype) {
      throw new PipelineTensorError(
        'input',
        input.name,
        `pipeline input '${input.name}' is ${tensor.dtype}, but ${spec.file} declares ${input.dtype}`,
      );
    }
  }

  const now = options.now ?? (() => performance.now());
  const controller = new AbortController();
  const signal = controller.signal;
  // Rejects as soon as the caller aborts, whether or not the calls in flight honour their signal.
  let onAbort = (): void => {};
  const cancelled = new Promise<never>((_, reject) => {
    onAbort = () => {
      reject(outer!.reason);
      controller.abort(outer!.reason);
    };
  });
  outer?.addEventListener('abort', onAbort, { once: true });

  const stepsByName = new Map(spec.steps.map((step) => [step.name, step]));
  /** Outputs of the steps that ran once (not fan-out). */
  const shared = new Map<string, TensorMap>();
  /** Per item: a fan-out step's items, a per-item step's outputs. */
  const perItem = new Map<string, TensorMap[]>();
  const gatheredCache = new Map<string, Tensor>();

  const gather = (reference: Reference): Tensor => {
    const key = formatReference(reference);
    const cached = gatheredCache.get(key);
    if (cached !== undefined) return cached;
    const producer = stepsByName.get(reference.step!)!;
    const maps = perItem.get(producer.name)!;
    let tensor: Tensor;
    if (maps.length === 0) {
      const declared =
        options.outputSpecOf?.(producer, reference.name) ?? declaredOutput(producer, reference.name);
      if (declared === undefined) {
        throw new Error(
          `cannot gather '${key}' of no item: the dtype of output '${reference.name}' of step '${producer.name}' (${describeStep(producer)}) is not known`,
        );
      }
      tensor = emptyGathered(declared);
    } else {
      try {
        tensor = concatAxis0(maps.map((map) => map[reference.name]!));
      } catch (error) {
        throw new Error(`cannot gather '${key}': ${(error as Error).message}`);
      }
    }
    gatheredCache.set(key, tensor);
    return tensor;
  };

  const lookup = (reference: Reference, item: number | undefined): Tensor => {
    if (reference.step === undefined) return inputs[reference.name]!;
    if (reference.mode === 'gather') return gather(reference);
    const map = reference.mode === 'item' ? perItem.get(reference.step)![item!] : shared.get(reference.step);
    return map![reference.name]!;
  };

  const call = async (step: StepSpec, item: number | undefined): Promise<CallResult> => {
    try {
      const start = now();
      const stepInputs: TensorMap = {};
      for (const [name, reference] of Object.entries(step.inputs)) stepInputs[name] = lookup(reference, item);
      if (step.kind === 'model') {
        const model = await runtime.runModel(step, stepInputs, signal);
        const end = now();
        return { maps: [checkResult(step, isRecord(model) ? model.outputs : model)], start, end, model };
      }
      const result = await runtime.runProcessor(step, stepInputs, signal);
      const end = now();
      if (step.fanOut !== Array.isArray(result)) {
        throw new Error(
          step.fanOut
            ? `${describeStep(step)} fans out, so it must return a list of results, but it returned one`
            : `${describeStep(step)} does not fan out, so it must return one result, but it returned a list`,
        );
      }
      const maps = Array.isArray(result) ? result : [result];
      return { maps: maps.map((map) => checkResult(step, map)), start, end };
    } catch (cause) {
      if (outer?.aborted) throw outer.reason;
      if (signal.aborted) throw signal.reason;
      const error = new PipelineStepError(step.name, cause, describeStep(step), item);
      controller.abort(error);
      throw error;
    }
  };

  const execute = async (): Promise<PipelineResult> => {
    const timings: Record<string, StepTiming> = {};
    for (const step of spec.steps) {
      let results: CallResult[];
      if (step.perItem) {
        const count = perItem.get(step.forEach!)!.length;
        results = await Promise.all(Array.from({ length: count }, (_, item) => call(step, item)));
        perItem.set(
          step.name,
          results.map((result) => result.maps[0]!),
        );
      } else {
        const result = await call(step, undefined);
        results = [result];
        if (step.kind === 'processor' && step.fanOut) perItem.set(step.name, result.maps);
        else shared.set(step.name, result.maps[0]!);
      }
      timings[step.name] = timingOf(step, results);
    }
    const outputs: TensorMap = {};
    for (const output of spec.outputs) {
      const from = formatReference(output.from);
      let tensor: Tensor;
      try {
        tensor = lookup(output.from, undefined);
      } catch (error) {
        throw new PipelineTensorError(
          'output',
          output.name,
          `pipeline output '${output.name}': ${(error as Error).message}`,
        );
      }
      if (tensor.dtype !== output.dtype) {
        throw new PipelineTensorError(
          'output',
          output.name,
          `pipeline output '${output.name}' (from '${from}') is ${tensor.dtype}, but ${spec.file} declares ${output.dtype}`,
        );
      }
      outputs[output.name] = tensor;
    }
    return { outputs, steps: timings };
  };

  try {
    return await Promise.race([execute(), cancelled]);
  } finally {
    outer?.removeEventListener('abort', onAbort);
  }
}

function timingOf(step: StepSpec, results: CallResult[]): StepTiming {
  const timing: StepTiming = {
    ms:
      results.length === 0
        ? 0
        : results.reduce((end, r) => Math.max(end, r.end), -Infinity) -
          results.reduce((start, r) => Math.min(start, r.start), Infinity),
    kind: step.kind,
  };
  if (step.perItem) timing.items = results.length;
  if (step.kind === 'model') {
    const models = results.map((result) => result.model!);
    for (const key of ['queueMs', 'batchWaitMs', 'inferMs'] as const) {
      const value = mean(models.flatMap((model) => (typeof model[key] === 'number' ? [model[key]] : [])));
      if (value !== undefined) timing[key] = value;
    }
    const batchSizes = models.flatMap((model) =>
      typeof model.batchSize === 'number' ? [model.batchSize] : [],
    );
    if (batchSizes.length > 0) timing.batchSizes = batchSizes;
  }
  return timing;
}
