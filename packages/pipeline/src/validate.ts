/**
 * Validation of a `pipeline.json` as a graph (spec.ts describes the rules): names, references,
 * fan-out and gathering, and each step against its processor's or model's declared inputs and
 * outputs. Errors name the file and the step or field, and say what is wrong in words.
 */

import { dirname, isAbsolute, relative, resolve } from 'node:path';
import type { TensorSpec } from '@inferq/protocol';
import { listField, type PipelineFile, type PipelineFileStep, parsePipelineSchema } from './schema.ts';
import {
  declaredOutput,
  describeStep,
  type ModelInfo,
  PipelineFileError,
  type PipelineLookups,
  type PipelineOutputSpec,
  type PipelineSpec,
  type ProcessorInfo,
  type Reference,
  type StepSpec,
} from './spec.ts';

const quoted = (names: readonly string[]): string => names.map((name) => `'${name}'`).join(', ');

/** What resolving a reference found: the reference and the declared spec of its tensor, if any. */
interface Resolved {
  reference: Reference;
  spec?: TensorSpec;
}

class Validator {
  private readonly inputs: Map<string, TensorSpec>;
  private readonly steps = new Map<string, StepSpec>();

  constructor(
    private readonly file: string,
    private readonly raw: readonly PipelineFileStep[],
    inputs: readonly TensorSpec[],
    private readonly lookups: PipelineLookups,
  ) {
    this.inputs = new Map(inputs.map((input) => [input.name, input]));
  }

  fail(field: string, detail: string): never {
    throw new PipelineFileError(this.file, field, detail);
  }

  /**
   * Resolves `text` for a consumer that runs once per item of `forEach` (undefined: once). `where` is
   * the consumer's field, `what` how the message starts (`input 'x'`, `'from'`).
   */
  resolve(text: string, forEach: string | undefined, where: string, what: string, index?: number): Resolved {
    const dot = text.indexOf('.');
    if (dot === -1) {
      const spec = this.inputs.get(text);
      if (spec === undefined) {
        const hint = this.steps.has(text) ? ` (a step's output is '${text}.<output>')` : '';
        this.fail(where, `${what} refers to '${text}', but the pipeline has no input '${text}'${hint}`);
      }
      return { reference: { name: text, mode: 'shared' }, spec };
    }
    const stepName = text.slice(0, dot);
    const name = text.slice(dot + 1);
    const producer = this.steps.get(stepName);
    if (producer === undefined) {
      const later = this.raw.findIndex((step) => step.name === stepName);
      const detail =
        index === undefined
          ? `no step is named '${stepName}'`
          : later === index
            ? 'a step cannot read its own outputs'
            : `no earlier step is named '${stepName}'${later === -1 ? '' : ` (${listField('steps', later, stepName)} comes after it: steps run in the order they are declared)`}`;
      this.fail(where, `${what} refers to '${text}', but ${detail}`);
    }
    const spec = declaredOutput(producer, name);
    if (producer.outputs !== undefined && spec === undefined) {
      this.fail(
        where,
        `${what} refers to '${text}', but step '${stepName}' (${describeStep(producer)}) has no output '${name}' (its outputs: ${quoted(producer.outputs.map((output) => output.name))})`,
      );
    }
    const group = producer.kind === 'processor' && producer.fanOut ? producer.name : producer.forEach;
    let mode: Reference['mode'] = 'shared';
    if (group !== undefined) {
      if (forEach === group) mode = 'item';
      else if (forEach === undefined) mode = 'gather';
      else {
        this.fail(
          where,
          `${what} refers to '${text}', an item of fan-out '${group}', but the step runs for each item of '${forEach}': a step cannot read the items of another fan-out`,
        );
      }
    }
    if (!producer.usedOutputs.includes(name)) producer.usedOutputs.push(name);
    return { reference: { step: stepName, name, mode }, spec };
  }

  step(raw: PipelineFileStep, index: number): StepSpec {
    const field = listField('steps', index, raw.name);
    if (this.steps.has(raw.name)) {
      const first = this.steps.get(raw.name)!;
      this.fail(`${field}.name`, `'${raw.name}' is already the name of steps[${first.index}]`);
    }
    if (this.inputs.has(raw.name))
      this.fail(`${field}.name`, `'${raw.name}' is also the name of a pipeline input`);
    if (raw.model !== undefined && raw.processor !== undefined) {
      this.fail(
        field,
        "a step runs either a model or a processor, not both ('model' and 'processor' are set)",
      );
    }

    let signature: ProcessorInfo | ModelInfo | undefined;
    let step: StepSpec;
    const common = {
      name: raw.name,
      index,
      inputs: {},
      perItem: raw.forEach !== undefined,
      gathers: false,
      usedOutputs: [],
      ...(raw.forEach === undefined ? {} : { forEach: raw.forEach }),
    };
    if (raw.processor !== undefined) {
      if (raw.version !== undefined) this.fail(`${field}.version`, 'only a model step has a version');
      const info = this.lookups.processors(raw.processor);
      if (info === undefined) this.fail(`${field}.processor`, `unknown processor '${raw.processor}'`);
      signature = info;
      step = {
        ...common,
        kind: 'processor',
        processor: raw.processor,
        options: raw.options ?? {},
        fanOut: info.fanOut,
        outputs: info.outputs,
        ...(info.module === undefined ? {} : { module: info.module }),
      };
    } else if (raw.model !== undefined) {
      if (raw.options !== undefined) {
        this.fail(`${field}.options`, 'a model step takes no options (options are for processor steps)');
      }
      if (this.lookups.models !== undefined) {
        signature = this.lookups.models(raw.model, raw.version);
        if (signature === undefined) {
          const which = raw.version === undefined ? '' : ` version ${raw.version}`;
          this.fail(`${field}.model`, `unknown model '${raw.model}'${which}`);
        }
      }
      step = {
        ...common,
        kind: 'model',
        model: raw.model,
        ...(raw.version === undefined ? {} : { version: raw.version }),
        ...(signature === undefined ? {} : { outputs: signature.outputs }),
      };
    } else {
      return this.fail(field, "a step needs either 'model' or 'processor'");
    }

    if (raw.forEach !== undefined) this.checkForEach(step, raw.forEach, field);
    this.bindInputs(step, raw.inputs, signature, field, index);
    this.steps.set(step.name, step);
    return step;
  }

  private checkForEach(step: StepSpec, forEach: string, field: string): void {
    const target = this.steps.get(forEach);
    if (target === undefined) this.fail(`${field}.forEach`, `no earlier step is named '${forEach}'`);
    if (target.kind !== 'processor' || !target.fanOut) {
      this.fail(
        `${field}.forEach`,
        `step '${forEach}' (${describeStep(target)}) does not fan out: only a fan-out processor's step has items`,
      );
    }
    if (step.kind === 'processor' && step.fanOut) {
      this.fail(
        field,
        `nested fan-out is not supported: processor ${step.processor} fans out, and the step runs for each item of '${forEach}'`,
      );
    }
  }

  private bindInputs(
    step: StepSpec,
    inputs: Record<string, string>,
    signature: ProcessorInfo | ModelInfo | undefined,
    field: string,
    index: number,
  ): void {
    if (signature !== undefined) {
      const declared = signature.inputs.map((input) => input.name);
      for (const name of Object.keys(inputs)) {
        if (!declared.includes(name)) {
          this.fail(
            `${field}.inputs.${name}`,
            `${describeStep(step)} has no input '${name}' (its inputs: ${quoted(declared)})`,
          );
        }
      }
      const missing = declared.find((name) => inputs[name] === undefined);
      if (missing !== undefined) {
        this.fail(`${field}.inputs`, `input '${missing}' of ${describeStep(step)} is not supplied`);
      }
    }
    for (const [name, text] of Object.entries(inputs)) {
      const what = `input '${name}'`;
      const { reference, spec } = this.resolve(text, step.forEach, field, what, index);
      const wanted = signature?.inputs.find((input) => input.name === name);
      if (spec !== undefined && wanted !== undefined && spec.dtype !== wanted.dtype) {
        this.fail(
          field,
          `${what} refers to '${text}', which is ${spec.dtype}, but ${describeStep(step)} takes ${wanted.dtype}`,
        );
      }
      step.inputs[name] = reference;
      if (reference.mode === 'gather') step.gathers = true;
    }
  }
}

/**
 * The processors the file declares (`processors`: modules in the pipeline's folder) beside the
 * lookup's built-ins. A declared name may not be a built-in's, and a module must lie inside the
 * folder: the repository's own code, which only the workers load (docs/pipelines.md, "Your own
 * processors").
 */
function withDeclaredProcessors(
  file: string,
  parsed: PipelineFile,
  lookups: PipelineLookups,
): PipelineLookups {
  const declared = new Map<string, ProcessorInfo>();
  const folder = dirname(file);
  for (const [name, processor] of Object.entries(parsed.processors ?? {})) {
    const field = `processors.${name}`;
    if (lookups.processors(name) !== undefined) {
      throw new PipelineFileError(file, field, `'${name}' is a built-in processor's name; choose another`);
    }
    const module = resolve(folder, processor.module);
    const inside = relative(folder, module);
    if (isAbsolute(processor.module) || inside === '' || inside.startsWith('..') || isAbsolute(inside)) {
      throw new PipelineFileError(
        file,
        `${field}.module`,
        `'${processor.module}' is not inside the pipeline's folder; a processor's module lies beside its pipeline.json`,
      );
    }
    const specs = (list: typeof processor.inputs): TensorSpec[] =>
      list.map(({ name: spec, dtype, shape }) => ({ name: spec, dtype, shape }));
    declared.set(name, {
      fanOut: processor.fanOut ?? false,
      module,
      inputs: specs(processor.inputs),
      outputs: specs(processor.outputs),
    });
  }
  if (declared.size === 0) return lookups;
  return { ...lookups, processors: (name) => declared.get(name) ?? lookups.processors(name) };
}

function checkNames(file: string, list: 'inputs' | 'outputs', specs: readonly TensorSpec[]): void {
  specs.forEach((spec, index) => {
    const field = `${listField(list, index, spec.name)}.name`;
    const first = specs.findIndex((other) => other.name === spec.name);
    if (first !== index) {
      throw new PipelineFileError(file, field, `'${spec.name}' is already the name of ${list}[${first}]`);
    }
    if (list === 'inputs' && spec.name.includes('.')) {
      throw new PipelineFileError(
        file,
        field,
        `a pipeline input's name cannot contain '.': references read 'a.b' as output 'b' of step 'a'`,
      );
    }
  });
}

/**
 * Validates a parsed `pipeline.json` (`file` is its path, for messages) and returns its normalised
 * form. `lookups.processors` describes each processor; `lookups.models`, when given, each model (and
 * an unknown model is then an error). Throws PipelineFileError naming the file and the field or step.
 */
export function parsePipelineFile(raw: unknown, file: string, lookups: PipelineLookups): PipelineSpec {
  const parsed = parsePipelineSchema(raw, file);
  const inputs: TensorSpec[] = parsed.inputs.map(({ name, dtype, shape }) => ({ name, dtype, shape }));
  checkNames(file, 'inputs', inputs);
  checkNames(file, 'outputs', parsed.outputs);

  const validator = new Validator(file, parsed.steps, inputs, withDeclaredProcessors(file, parsed, lookups));
  const steps = parsed.steps.map((step, index) => validator.step(step, index));

  const outputs = parsed.outputs.map((output, index): PipelineOutputSpec => {
    const field = listField('outputs', index, output.name);
    const { reference, spec } = validator.resolve(output.from, undefined, field, "'from'");
    if (spec !== undefined && spec.dtype !== output.dtype) {
      validator.fail(
        field,
        `declared ${output.dtype}, but 'from' refers to '${output.from}', which is ${spec.dtype}`,
      );
    }
    return { name: output.name, dtype: output.dtype, shape: output.shape, from: reference };
  });

  return {
    file,
    ...(parsed.description === undefined ? {} : { description: parsed.description }),
    inputs,
    outputs,
    steps,
  };
}
