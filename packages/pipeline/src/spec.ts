/**
 * Pipelines: `<model repository>/<name>/<version>/pipeline.json`
 *
 * A pipeline is served like a model (`POST /v1/models/{name}/infer`, the same named tensors in and
 * out), but instead of a `model.onnx` its version folder holds a `pipeline.json` that declares a graph
 * of steps. Each step is either a model of the repository, run through that model's own queue (so it
 * batches fleet-wide with every other caller of that model), or a processor: a pure function over
 * named tensors (image decoding, softmax, CTC decoding, ...).
 *
 * The user-facing description, with the demo's whole OCR pipeline, is docs/pipelines.md; the
 * demo's file is models/demo/ocr/1/pipeline.json. Below, the rules this package enforces.
 *
 * Fields (every object is strict: an unknown field is an error naming it):
 * - `description`: optional free text.
 * - `inputs`: what a client sends, as a model signature's inputs: `name`, `dtype` (a protocol dtype),
 *   `shape` (integers, -1 for a dynamic dimension). Names are unique and contain no `.`.
 * - `outputs`: what the pipeline answers (at least one), each a tensor spec plus `from`: a reference
 *   (below) to the tensor it is. Names are unique. The executor checks each output's dtype.
 * - `steps` (at least one), each with:
 *   - `name`: letters, digits, `-` and `_`; unique, and not the name of a pipeline input.
 *   - exactly one of `model` (a model of the repository; `version`, a positive integer, pins one,
 *     else the model's default version serves) or `processor` (a processor's name: letters, digits,
 *     `.`, `-` and `_`).
 *   - `inputs`: the step's input name -> a reference. Every input the model or processor declares
 *     must be supplied, and nothing else.
 *   - `options`: a JSON object handed to the processor (processor steps only).
 *   - `forEach`: the name of an earlier fan-out step (below): the step runs once per item.
 *
 * References. `"image"` (no dot) is a pipeline input; `"detect.maps"` is output `maps` of step
 * `detect` (everything after the first dot is the output's name, since model outputs often contain
 * dots). A reference must point to a pipeline input or to an *earlier* step: steps run in the order
 * they are declared, one after the other, and that order is the only ordering there is. Where both
 * ends declare a dtype (pipeline inputs, processor inputs and outputs, model inputs and outputs once
 * the model is known), they must agree; shapes are not inferred.
 *
 * Fan-out and fan-in. A processor may be a fan-out processor: it returns a list of results, one per
 * item (`image.crop-boxes`: one crop per text box). A step with `"forEach": "crops"` runs once per
 * item of step `crops`, all items at once (so N model requests are in flight together and batch).
 * Inside such a step:
 * - `crops.<output>` is the item's own tensor;
 * - a reference to another step with the same `forEach` is that step's output for the same item;
 * - a reference to a step without `forEach` (or to a pipeline input) is shared by every item;
 * - a reference to a per-item step of another fan-out is refused, and so is a fan-out processor step
 *   with `forEach` (nested fan-out is not supported).
 * A step without `forEach` (or a pipeline output's `from`) that references the fan-out step or one of
 * its per-item steps gathers: it receives the items' tensors concatenated along axis 0, in item
 * order. With no item the gathered tensor is empty: axis 0 is 0 and the other dimensions are the
 * declared output's (a dynamic one is 0), so its producer must declare that output (a processor
 * always does; a model step's outputs are known when the file is parsed with the repository's models,
 * or given to the executor by its `outputSpecOf` option).
 *
 * Errors name the file and the field or step, e.g. `.../ocr/1/pipeline.json: steps[4] 'crops': input
 * 'boxes' refers to 'boxes.boxes', but no earlier step is named 'boxes'`.
 */
import type { TensorSpec } from '@inferq/protocol';

/**
 * A parsed reference: `step` absent for a pipeline input. `mode` says what the consumer receives:
 * the tensor as is (`shared`), the current item's tensor (`item`, inside a `forEach` step), or every
 * item's tensor concatenated along axis 0 (`gather`).
 */
export interface Reference {
  step?: string;
  name: string;
  mode: 'shared' | 'item' | 'gather';
}

interface StepBase {
  name: string;
  /** Position in `steps` (and in execution order). */
  index: number;
  /** The step's input name -> where it comes from. */
  inputs: Record<string, Reference>;
  /** The fan-out step this step runs once per item of. */
  forEach?: string;
  /** Runs once per item (it has `forEach`). */
  perItem: boolean;
  /** At least one of its inputs gathers the items of a fan-out. */
  gathers: boolean;
  /**
   * The outputs the step declares: the processor's, or the model's when the file was parsed with a
   * model lookup; undefined when unknown. For a fan-out processor, each item's outputs.
   */
  outputs?: TensorSpec[];
  /** The outputs that later steps or the pipeline's outputs read, in order of first use. */
  usedOutputs: string[];
}

export interface ModelStepSpec extends StepBase {
  kind: 'model';
  model: string;
  /** Absent: the model's default version. */
  version?: number;
}

export interface ProcessorStepSpec extends StepBase {
  kind: 'processor';
  processor: string;
  /** A processor the repository brings: the absolute path of its module (absent: a built-in). */
  module?: string;
  /** The step's `options` ({} when absent). */
  options: Record<string, unknown>;
  /** Returns a list of results, one per item. */
  fanOut: boolean;
}

export type StepSpec = ModelStepSpec | ProcessorStepSpec;

export interface PipelineOutputSpec extends TensorSpec {
  from: Reference;
}

/** A validated and normalised `pipeline.json`. */
export interface PipelineSpec {
  /** The file it was read from (for messages). */
  file: string;
  description?: string;
  inputs: TensorSpec[];
  outputs: PipelineOutputSpec[];
  steps: StepSpec[];
}

/** What validation needs to know of a processor. */
export interface ProcessorInfo {
  /** Its run returns a list of results, one per item. */
  fanOut: boolean;
  /** A processor the pipeline's folder brings: the absolute path of its module. */
  module?: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

export interface ModelInfo {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

export interface PipelineLookups {
  processors: (name: string) => ProcessorInfo | undefined;
  /**
   * The model's signature (version absent: its default version), undefined when there is no such
   * model. Optional: without it models are not checked (they may not be known yet).
   */
  models?: (name: string, version?: number) => ModelInfo | undefined;
}

/** A `pipeline.json` that cannot be used; the message names the file and the field or step. */
export class PipelineFileError extends Error {
  override readonly name = 'PipelineFileError';

  constructor(
    readonly file: string,
    readonly field: string,
    detail: string,
  ) {
    super(`${file}: ${field}: ${detail}`);
  }
}

/** `'<step>.<name>'`, or the input's name for a pipeline input. */
export function formatReference(reference: Pick<Reference, 'step' | 'name'>): string {
  return reference.step === undefined ? reference.name : `${reference.step}.${reference.name}`;
}

/** `model ppocr-rec` or `processor image.decode`. */
export function describeStep(step: StepSpec): string {
  return step.kind === 'model' ? `model ${step.model}` : `processor ${step.processor}`;
}

/**
 * The distinct models a pipeline uses, in order of first use (`version` absent: the default
 * version). The pipeline is unavailable while one of them is.
 */
export function modelsOf(spec: PipelineSpec): { model: string; version?: number }[] {
  const seen = new Set<string>();
  const models: { model: string; version?: number }[] = [];
  for (const step of spec.steps) {
    if (step.kind !== 'model') continue;
    const key = `${step.model}\0${step.version ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    models.push(
      step.version === undefined ? { model: step.model } : { model: step.model, version: step.version },
    );
  }
  return models;
}

/** The spec a step declares for one of its outputs, if it does. */
export function declaredOutput(step: StepSpec, name: string): TensorSpec | undefined {
  return step.outputs?.find((output) => output.name === name);
}
