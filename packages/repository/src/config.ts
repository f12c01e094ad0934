import type { ModelSignature } from '@inferq/protocol';
import { z } from 'zod';

/** Batch cap given to a model that can batch (every input and output has a dynamic first axis). */
export const DEFAULT_MAX_BATCH_SIZE = 32;

/** onnxruntime execution provider names a config may ask for; `cpu` is always available. */
export const EXECUTION_PROVIDERS = ['cpu', 'cuda', 'tensorrt', 'webgpu', 'dml', 'coreml', 'qnn'] as const;
export type ExecutionProviderName = (typeof EXECUTION_PROVIDERS)[number];

/**
 * Where a worker runs a model's sessions: `thread` (a worker thread of its own, so the event loop
 * stays free while it runs), `main` (the worker's main thread: no hop, but each run blocks the event
 * loop), or `auto` (main when its largest warm-up batch takes under a millisecond, else thread).
 */
export const SESSION_PLACEMENTS = ['auto', 'thread', 'main'] as const;
export type SessionPlacement = (typeof SESSION_PLACEMENTS)[number];

/**
 * Which version folders are served, as Triton's `version_policy`: the newest N, all, or a list.
 * Versions on disk that the policy leaves out are `retired`.
 */
const VersionPolicySchema = z.union([
  z.strictObject({ latest: z.strictObject({ numVersions: z.int().min(1) }) }),
  z.strictObject({ all: z.strictObject({}) }),
  z.strictObject({ specific: z.strictObject({ versions: z.array(z.int().min(1)).min(1) }) }),
]);

export type VersionPolicy = z.infer<typeof VersionPolicySchema>;

/** inferq serves every version by default (a request may pin an older one); Triton's default is latest 1. */
export const DEFAULT_VERSION_POLICY: VersionPolicy = { all: {} };

const PadSchema = z.strictObject({
  /** Axis 0 is the batch axis: it is stacked, never padded. */
  axis: z.int().min(1),
  value: z.number().default(0),
});

/**
 * How one axis of a padded batch's output is cut back to a request's own size, from the size of a
 * padded input's padded axis in that request: max(min, floor((size × multiplier + offset) / divisor)).
 */
const CropRuleSchema = z.strictObject({
  /** Axis of the output; axis 0 is the batch axis, split by rows and never cropped. */
  axis: z.int().min(1),
  /** A padded input (a key of `pad`): its padded axis is the size the rule reads. */
  input: z.string().min(1),
  multiplier: z.int().min(1).default(1),
  offset: z.int().default(0),
  divisor: z.int().min(1).default(1),
  min: z.int().min(0).default(0),
});

/** The `config.json` of a model folder as written by its author; every field is optional. */
export const ModelConfigFileSchema = z.strictObject({
  maxBatchSize: z.int().min(0).max(65_536).optional(),
  maxBatchDelayMs: z.number().min(0).max(60_000).default(2),
  preferredBatchSizes: z.array(z.int().min(1)).default([]),
  latencyObjectiveMs: z.number().gt(0).max(3_600_000).optional(),
  executionProviders: z.array(z.enum(EXECUTION_PROVIDERS)).min(1).default(['cpu']),
  intraOpThreads: z.int().min(0).max(1024).default(0),
  spinThreads: z.boolean().default(false),
  placement: z.enum(SESSION_PLACEMENTS).default('auto'),
  cache: z
    .strictObject({
      enabled: z.boolean().default(true),
      ttlSeconds: z.int().min(1).default(3600),
    })
    .default({ enabled: true, ttlSeconds: 3600 }),
  warmup: z.boolean().default(true),
  pad: z.record(z.string(), PadSchema).default({}),
  /** Output name -> the rules that crop it; required for every output as soon as `pad` is set. */
  crop: z.record(z.string(), z.array(CropRuleSchema)).default({}),
  versionPolicy: VersionPolicySchema.default(DEFAULT_VERSION_POLICY),
});

export type ModelConfigFile = z.input<typeof ModelConfigFileSchema>;

export interface PadSpec {
  axis: number;
  value: number;
}

/**
 * One axis of an output that follows a padded input: in a padded batch it has the size the rule gives
 * for the padded size, and each request gets the size the rule gives for its own input,
 * max(min, floor((size × multiplier + offset) / divisor)).
 */
export interface CropRule {
  axis: number;
  input: string;
  multiplier: number;
  offset: number;
  divisor: number;
  min: number;
}

/** The size of a cropped axis for an input whose padded axis is `inputSize` (CropRule). */
export function croppedSize(rule: CropRule, inputSize: number): number {
  return Math.max(rule.min, Math.floor((inputSize * rule.multiplier + rule.offset) / rule.divisor));
}

/** A model version's configuration with every default resolved. */
export interface ModelConfig {
  /** 0 = no batch axis: each request runs alone, tensors pass through as sent. */
  maxBatchSize: number;
  maxBatchDelayMs: number;
  /** Ascending, unique, each <= maxBatchSize. */
  preferredBatchSizes: number[];
  /**
   * The p99 latency objective (ms, from acceptance to the end of the run): each request that ends is
   * counted as meeting or missing it (`inferq_latency_objective_total`). Absent: none.
   */
  latencyObjectiveMs?: number;
  /** Tried in order when a session opens; `cpu` is the last resort. */
  executionProviders: ExecutionProviderName[];
  /** 0 = onnxruntime's default. */
  intraOpThreads: number;
  /**
   * Let onnxruntime's thread pools busy-wait between runs (its default). Off here: on a small box
   * the API and Redis share the cores, and a spinning pool takes their time (docs/performance.md).
   */
  spinThreads: boolean;
  placement: SessionPlacement;
  cache: { enabled: boolean; ttlSeconds: number };
  warmup: boolean;
  /** Input name -> the axis padded to the largest in the batch (ragged batching). */
  pad: Record<string, PadSpec>;
  /**
   * Output name -> how its padded axes are cut back to each request's own size; with `pad` set, every
   * output has an entry (an empty list: it has no axis that follows a padded input).
   */
  crop: Record<string, CropRule[]>;
}

/** A `config.json` that cannot be used; the message names the file and the field. */
export class ModelConfigError extends Error {
  override readonly name = 'ModelConfigError';

  constructor(
    readonly file: string,
    readonly field: string,
    detail: string,
  ) {
    super(`${file}: ${field}: ${detail}`);
  }
}

function configError(file: string, error: z.ZodError): ModelConfigError {
  const issue = error.issues[0]!;
  const keys = issue.code === 'unrecognized_keys' ? issue.keys : [];
  const field = [...issue.path, ...keys].map(String).join('.') || '(root)';
  const detail = issue.code === 'unrecognized_keys' ? 'unknown field' : issue.message;
  return new ModelConfigError(file, field, detail);
}

/**
 * The `versionPolicy` of a parsed `config.json` (undefined when the file is absent), read on its own:
 * the policy decides which versions exist for the service, while the other fields are checked per
 * version against its signature. Throws ModelConfigError naming the field.
 */
export function readVersionPolicy(raw: unknown, file: string): VersionPolicy {
  if (raw === undefined) return DEFAULT_VERSION_POLICY;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ModelConfigError(file, '(root)', 'expected a JSON object');
  }
  const parsed = z
    .object({ versionPolicy: VersionPolicySchema.default(DEFAULT_VERSION_POLICY) })
    .safeParse(raw);
  if (!parsed.success) throw configError(file, parsed.error);
  return parsed.data.versionPolicy;
}

/** The versions (of those on disk) that a policy serves. */
export function servedVersions(policy: VersionPolicy, onDisk: readonly number[]): ReadonlySet<number> {
  if ('latest' in policy)
    return new Set([...onDisk].sort((a, b) => b - a).slice(0, policy.latest.numVersions));
  if ('specific' in policy) return new Set(onDisk.filter((v) => policy.specific.versions.includes(v)));
  return new Set(onDisk);
}

/** The batch cap a model gets when its config does not say: batching needs a batch axis everywhere. */
export function inferMaxBatchSize(signature: ModelSignature): number {
  const specs = [...signature.inputs, ...signature.outputs];
  const batchable = specs.length > 0 && specs.every((spec) => spec.shape.length > 0 && spec.shape[0] === -1);
  return batchable ? DEFAULT_MAX_BATCH_SIZE : 0;
}

/**
 * Validates a parsed `config.json` (undefined when the file is absent) against the model signature and
 * resolves every default. Throws ModelConfigError naming `file` and the offending field.
 */
export function resolveModelConfig(raw: unknown, file: string, signature: ModelSignature): ModelConfig {
  const parsed = ModelConfigFileSchema.safeParse(raw ?? {});
  if (!parsed.success) throw configError(file, parsed.error);
  const fileConfig = parsed.data;

  const maxBatchSize = fileConfig.maxBatchSize ?? inferMaxBatchSize(signature);
  if (maxBatchSize > 0) {
    for (const spec of [...signature.inputs, ...signature.outputs]) {
      if (spec.shape.length === 0 || spec.shape[0] !== -1) {
        throw new ModelConfigError(
          file,
          'maxBatchSize',
          `${maxBatchSize} needs a dynamic first axis on every input and output, but '${spec.name}' has shape [${spec.shape.join(', ')}]; use 0`,
        );
      }
    }
  }

  const preferredBatchSizes = [...new Set(fileConfig.preferredBatchSizes)].sort((a, b) => a - b);
  const tooLarge = preferredBatchSizes.find((size) => size > maxBatchSize);
  if (tooLarge !== undefined) {
    throw new ModelConfigError(
      file,
      'preferredBatchSizes',
      `${tooLarge} is larger than maxBatchSize ${maxBatchSize}`,
    );
  }

  for (const [inputName, pad] of Object.entries(fileConfig.pad)) {
    const field = `pad.${inputName}`;
    const spec = signature.inputs.find((input) => input.name === inputName);
    if (spec === undefined) {
      const known = signature.inputs.map((input) => `'${input.name}'`).join(', ');
      throw new ModelConfigError(file, field, `the model has no input '${inputName}' (inputs: ${known})`);
    }
    if (maxBatchSize === 0) {
      throw new ModelConfigError(file, field, 'padding needs batching, but maxBatchSize is 0');
    }
    if (spec.dtype === 'string') {
      throw new ModelConfigError(file, field, 'string inputs cannot be padded');
    }
    if (pad.axis >= spec.shape.length) {
      throw new ModelConfigError(
        file,
        `${field}.axis`,
        `${pad.axis} is out of range for rank ${spec.shape.length}`,
      );
    }
    if (spec.shape[pad.axis] !== -1) {
      throw new ModelConfigError(
        file,
        `${field}.axis`,
        `axis ${pad.axis} of '${inputName}' is fixed (${spec.shape[pad.axis]}); only dynamic axes can be padded`,
      );
    }
  }

  checkCropRules(fileConfig.crop, fileConfig.pad, file, signature);

  return {
    maxBatchSize,
    maxBatchDelayMs: fileConfig.maxBatchDelayMs,
    preferredBatchSizes,
    ...(fileConfig.latencyObjectiveMs === undefined
      ? {}
      : { latencyObjectiveMs: fileConfig.latencyObjectiveMs }),
    executionProviders: fileConfig.executionProviders,
    intraOpThreads: fileConfig.intraOpThreads,
    spinThreads: fileConfig.spinThreads,
    placement: fileConfig.placement,
    cache: fileConfig.cache,
    warmup: fileConfig.warmup,
    pad: fileConfig.pad,
    crop: fileConfig.crop,
  };
}

/**
 * A padded batch answers every request at the batch's padded size: each output must say how it is cut
 * back to the request's own size, or a request's result would depend on its companions.
 */
function checkCropRules(
  crop: Record<string, CropRule[]>,
  pad: Record<string, PadSpec>,
  file: string,
  signature: ModelSignature,
): void {
  const padded = Object.keys(pad);
  if (padded.length === 0) {
    const first = Object.keys(crop)[0];
    if (first !== undefined) {
      throw new ModelConfigError(
        file,
        `crop.${first}`,
        'crop rules undo padding, but no input is padded (pad)',
      );
    }
    return;
  }
  const outputNames = signature.outputs.map((output) => `'${output.name}'`).join(', ');
  for (const name of Object.keys(crop)) {
    if (!signature.outputs.some((output) => output.name === name)) {
      throw new ModelConfigError(
        file,
        `crop.${name}`,
        `the model has no output '${name}' (outputs: ${outputNames})`,
      );
    }
  }
  for (const output of signature.outputs) {
    const rules = crop[output.name];
    if (rules === undefined) {
      throw new ModelConfigError(
        file,
        `crop.${output.name}`,
        `inputs are padded (pad.${padded.join(', pad.')}), so every output needs a crop rule saying how it is cut back to each request's own size; [] for an output with no axis that follows a padded input`,
      );
    }
    const seen = new Set<number>();
    rules.forEach((rule, index) => {
      const field = `crop.${output.name}.${index}`;
      if (pad[rule.input] === undefined) {
        throw new ModelConfigError(
          file,
          `${field}.input`,
          `'${rule.input}' is not a padded input (padded: ${padded.map((name) => `'${name}'`).join(', ')})`,
        );
      }
      if (rule.axis >= output.shape.length) {
        throw new ModelConfigError(
          file,
          `${field}.axis`,
          `${rule.axis} is out of range for '${output.name}' of rank ${output.shape.length}`,
        );
      }
      if (output.shape[rule.axis] !== -1) {
        throw new ModelConfigError(
          file,
          `${field}.axis`,
          `axis ${rule.axis} of '${output.name}' is fixed (${output.shape[rule.axis]}); only a dynamic axis can follow a padded input`,
        );
      }
      if (seen.has(rule.axis)) {
        throw new ModelConfigError(
          file,
          `${field}.axis`,
          `axis ${rule.axis} of '${output.name}' has two rules`,
        );
      }
      seen.add(rule.axis);
    });
  }
}
