/**
 * The structure of `pipeline.json` (spec.ts describes the format): field types, names and unknown
 * fields. What needs the whole file (uniqueness, references, processors and models) is validate.ts's.
 */
import { DTYPES } from '@inferq/protocol';
import { z } from 'zod';
import { PipelineFileError } from './spec.ts';

/** Step names: they end up in references (`<step>.<output>`), timings and messages. */
export const STEP_NAME = /^[A-Za-z0-9_-]+$/;
/** As the model repository's folder names (packages/repository). */
export const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
export const PROCESSOR_NAME = /^[A-Za-z0-9._-]+$/;
/** A pipeline input's name (no dot), or `<step>.<output>` (the output's name may contain dots). */
const REFERENCE = /^(?:[^.]+|[A-Za-z0-9_-]+\..+)$/;

const STRING = 'expected a string';
const DIMENSION = 'expected integers ≥ -1 (-1: a dynamic dimension)';
const REFERENCE_TEXT = "expected a reference: a pipeline input's name, or '<step>.<output>'";

const TensorSpecFields = {
  name: z.string({ error: STRING }).min(1, { error: 'expected a non-empty name' }),
  dtype: z.enum(DTYPES, { error: `expected one of ${DTYPES.join(', ')}` }),
  shape: z.array(z.int({ error: DIMENSION }).min(-1, { error: DIMENSION }), {
    error: 'expected a list of dimensions',
  }),
};

const InputSchema = z.strictObject(TensorSpecFields, { error: 'expected a tensor spec object' });

const OutputSchema = z.strictObject(
  {
    ...TensorSpecFields,
    from: z.string({ error: REFERENCE_TEXT }).regex(REFERENCE, { error: REFERENCE_TEXT }),
  },
  { error: 'expected a tensor spec object with `from`' },
);

const StepSchema = z.strictObject(
  {
    name: z
      .string({ error: STRING })
      .regex(STEP_NAME, { error: "expected a step name: letters, digits, '-' and '_'" }),
    model: z
      .string({ error: STRING })
      .regex(MODEL_NAME, {
        error: "expected a model name: letters, digits, '.', '-' and '_', first a letter or digit",
      })
      .optional(),
    version: z
      .int({ error: 'expected a positive integer' })
      .min(1, { error: 'expected a positive integer' })
      .optional(),
    processor: z
      .string({ error: STRING })
      .regex(PROCESSOR_NAME, { error: "expected a processor name: letters, digits, '.', '-' and '_'" })
      .optional(),
    inputs: z.record(
      z.string(),
      z.string({ error: REFERENCE_TEXT }).regex(REFERENCE, { error: REFERENCE_TEXT }),
      {
        error: "expected an object: the step's input name -> a reference",
      },
    ),
    options: z.record(z.string(), z.unknown(), { error: 'expected a JSON object' }).optional(),
    forEach: z.string({ error: 'expected the name of an earlier fan-out step' }).optional(),
  },
  { error: 'expected a step object' },
);

/** A processor the repository brings (a module beside pipeline.json), declared as a built-in is. */
const ProcessorSchema = z.strictObject(
  {
    module: z.string({
      error: "expected the path of a JavaScript module, relative to the pipeline's folder",
    }),
    fanOut: z.boolean({ error: 'expected true or false' }).optional(),
    inputs: z.array(InputSchema, { error: 'expected a list of tensor specs' }),
    outputs: z.array(InputSchema, { error: 'expected a list of tensor specs' }),
  },
  { error: 'expected a processor object: module, fanOut, inputs, outputs' },
);

export const PipelineFileSchema = z.strictObject(
  {
    description: z.string({ error: STRING }).optional(),
    processors: z
      .record(
        z
          .string()
          .regex(PROCESSOR_NAME, { error: "expected a processor name: letters, digits, '.', '-' and '_'" }),
        ProcessorSchema,
        { error: 'expected an object: processor name -> its module and signature' },
      )
      .optional(),
    inputs: z.array(InputSchema, { error: 'expected a list of tensor specs' }),
    outputs: z
      .array(OutputSchema, { error: 'expected a list of tensor specs' })
      .min(1, { error: 'a pipeline needs at least one output' }),
    steps: z
      .array(StepSchema, { error: 'expected a list of steps' })
      .min(1, { error: 'a pipeline needs at least one step' }),
  },
  { error: 'expected a JSON object' },
);

export type PipelineFile = z.output<typeof PipelineFileSchema>;
export type PipelineFileStep = PipelineFile['steps'][number];

function isRecord(value: unknown): value is Record<PropertyKey, unknown> {
  return typeof value === 'object' && value !== null;
}

/**
 * `steps[3] 'crops'.inputs.image`: a path in the file, with the name of each listed element that has
 * one, so that a message points at the step or tensor spec by position and name.
 */
export function fieldOf(raw: unknown, path: readonly PropertyKey[]): string {
  let field = '';
  let node = raw;
  for (const key of path) {
    node = isRecord(node) ? node[key] : undefined;
    if (typeof key === 'number') {
      field += `[${key}]`;
      if (isRecord(node) && typeof node.name === 'string') field += ` '${node.name}'`;
    } else {
      field += field === '' ? String(key) : `.${String(key)}`;
    }
  }
  return field === '' ? '(root)' : field;
}

/** The field of element `index` of a listed array: `steps[3] 'crops'`. */
export function listField(list: 'inputs' | 'outputs' | 'steps', index: number, name: string): string {
  return `${list}[${index}] '${name}'`;
}

/** Checks the structure of a parsed `pipeline.json`; throws PipelineFileError at the first problem. */
export function parsePipelineSchema(raw: unknown, file: string): PipelineFile {
  const parsed = PipelineFileSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    throw new PipelineFileError(file, fieldOf(raw, [...issue.path, issue.keys[0]!]), 'unknown field');
  }
  throw new PipelineFileError(file, fieldOf(raw, issue.path), issue.message);
}
