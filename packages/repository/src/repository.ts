/**
 * Reading the model repository: each model folder's versions, config.json, signature and warm-up
 * sample, with the last good read kept for a version whose files turn unusable. One file, a little
 * over the usual size: the rules for what counts as a version live in one place.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { modelsOf, type ModelInfo as PipelineModelInfo, type PipelineSpec } from '@inferq/pipeline';
import {
  batchShapeOf,
  decodeInferRequest,
  type InputLimits,
  type ModelSignature,
  type TensorMap,
  validateInputs,
  type WireFormat,
} from '@inferq/protocol';
import {
  type ModelConfig,
  ModelConfigError,
  readVersionPolicy,
  resolveModelConfig,
  servedVersions,
} from './config.ts';
import { checkPipelineModels, PIPELINE_FILE, readPipelineVersion, signatureOf } from './pipeline-version.ts';
import { readModelSignature } from './signature.ts';

/** One servable model file: a version of a model with its signature and resolved config. */
export interface ModelVersion {
  name: string;
  version: number;
  /** Absolute path of model.onnx. */
  path: string;
  signature: ModelSignature;
  config: ModelConfig;
  /** Identifies the model file, config.json and warm-up sample read: a different one means reload. */
  fingerprint: string;
  /** The version's own warm-up request (WARMUP_FILES), checked against the signature. */
  warmupSample?: WarmupSample;
  /**
   * A pipeline version (its folder holds pipeline.json, which `path` names): its steps. Absent for a
   * model. Its signature is the file's inputs and outputs.
   */
  pipeline?: PipelineSpec;
}

/** A warm-up request read from the version folder: what the worker warms up (and places) with. */
export interface WarmupSample {
  /** Absolute path of the file it came from. */
  file: string;
  /** Its inputs, valid for the signature (and sharing one batch axis when the model batches). */
  inputs: TensorMap;
}

/** A version folder as the repository holds it, servable or not. */
export interface RepositoryVersion {
  name: string;
  version: number;
  /** Absolute path of model.onnx. */
  path: string;
  fingerprint: string;
  /** On disk but left out by the model's `versionPolicy`: not served. */
  retired: boolean;
  /** What a worker loads and the API validates against; undefined when `problem` says why not. */
  model?: ModelVersion;
  /** Why this version cannot be served: its config.json or its model file, verbatim. */
  problem?: string;
}

export interface ModelEntry {
  name: string;
  /** Every version folder, ascending. */
  versions: RepositoryVersion[];
}

export interface ModelInfo {
  name: string;
  /** Versions served (not retired by the version policy), ascending; servable or not. */
  versions: number[];
  /** The highest served version. */
  defaultVersion: number;
}

export interface ModelRepository {
  /** Absolute path of the repository folder. */
  readonly dir: string;
  /** Entries that are neither a model nor a version (each names its path); skipped, not fatal. */
  readonly problems: readonly string[];
  /** Every model with at least one version folder, sorted by name. */
  models(): readonly ModelEntry[];
  /** One model with its version folders. */
  model(name: string): ModelEntry | undefined;
  /** Models with at least one served version, sorted by name. */
  list(): ModelInfo[];
  /** A served, servable version; the default (highest served) when `version` is omitted. */
  get(name: string, version?: number): ModelVersion | undefined;
  /** A version folder whatever its state. */
  version(name: string, version: number): RepositoryVersion | undefined;
}

export const CONFIG_FILE = 'config.json';
export const MODEL_FILE = 'model.onnx';
/**
 * A version's own warm-up request, beside its model.onnx: an infer body in either wire format
 * (docs/models.md, "Warm-up samples"). At most one of the two.
 */
export const WARMUP_FILES: Readonly<Record<WireFormat, string>> = {
  json: 'warmup.json',
  msgpack: 'warmup.msgpack',
};

/** The operator's own file, like model.onnx: no caps on its size (the API's are for clients). */
const UNCAPPED: InputLimits = {
  maxElementsPerTensor: Number.MAX_SAFE_INTEGER,
  maxRank: 1024,
  maxDimension: Number.MAX_SAFE_INTEGER,
  maxStringBytes: Number.MAX_SAFE_INTEGER,
  maxInputs: 4096,
  maxListElements: Number.MAX_SAFE_INTEGER,
};

/** Model names end up in URLs, Redis keys and metric labels. */
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const VERSION_NAME = /^[1-9][0-9]*$/;

async function fileStamp(path: string): Promise<string | undefined> {
  const info = await stat(path).catch(() => undefined);
  return info?.isFile() ? `${info.size}:${info.mtimeMs}` : undefined;
}

async function readConfigText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function parseConfig(text: string | undefined, file: string): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ModelConfigError(file, '(root)', `not valid JSON: ${(error as Error).message}`);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The warm-up sample files in a version folder, with their stamps (none, one, or both: refused). */
async function warmupFilesOf(
  versionDir: string,
): Promise<{ format: WireFormat; file: string; stamp: string }[]> {
  const found: { format: WireFormat; file: string; stamp: string }[] = [];
  for (const [format, name] of Object.entries(WARMUP_FILES) as [WireFormat, string][]) {
    const file = join(versionDir, name);
    const stamp = await fileStamp(file);
    if (stamp !== undefined) found.push({ format, file, stamp });
  }
  return found;
}

/**
 * Decodes a warm-up sample as the API decodes a request body, then checks it as the API checks a
 * request for this version: a body the API would refuse is refused here, naming the file.
 */
async function readWarmupSample(
  file: string,
  format: WireFormat,
  signature: ModelSignature,
  maxBatchSize: number,
): Promise<WarmupSample> {
  try {
    const body = decodeInferRequest(new Uint8Array(await readFile(file)), format, UNCAPPED);
    const extra = Object.keys(body).filter(
      (key) => key !== 'inputs' && (body as unknown as Record<string, unknown>)[key] !== undefined,
    );
    if (extra.length > 0)
      throw new Error(`only "inputs" is used; remove ${extra.map((key) => `"${key}"`).join(', ')}`);
    validateInputs(body, signature);
    if (maxBatchSize > 0 && signature.inputs.length > 0) batchShapeOf(body.inputs, signature);
    return { file, inputs: body.inputs };
  } catch (error) {
    throw new Error(`${file}: warm-up sample: ${messageOf(error)}`);
  }
}

async function readModel(
  modelDir: string,
  name: string,
  previous: ModelRepository | undefined,
  problems: string[],
): Promise<ModelEntry | undefined> {
  const entries = await readdir(modelDir, { withFileTypes: true });
  const numbers: number[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const version = Number(entry.name);
    if (!VERSION_NAME.test(entry.name) || !Number.isSafeInteger(version)) {
      problems.push(
        `${join(modelDir, entry.name)}: skipped; versions are positive integers without leading zeros`,
      );
      continue;
    }
    // A folder without its model file is not a version yet (being copied in) or any more (being
    // deleted: `rm -r` removes the files first): neither may look like a broken version.
    if (
      (await fileStamp(join(modelDir, entry.name, MODEL_FILE))) === undefined &&
      (await fileStamp(join(modelDir, entry.name, PIPELINE_FILE))) === undefined
    ) {
      problems.push(`${join(modelDir, entry.name)}: skipped; no ${MODEL_FILE} (or ${PIPELINE_FILE}) in it`);
      continue;
    }
    numbers.push(version);
  }
  if (numbers.length === 0) {
    problems.push(`${modelDir}: skipped; model '${name}' has no version folder (e.g. 1/${MODEL_FILE})`);
    return undefined;
  }
  numbers.sort((a, b) => a - b);

  const configFile = join(modelDir, CONFIG_FILE);
  const configText = await readConfigText(configFile);
  const configHash = createHash('sha256')
    .update(configText ?? '')
    .digest('base64url')
    .slice(0, 12);
  // A config.json that is not even JSON, or whose policy is invalid, makes every version unavailable.
  let raw: unknown;
  let configProblem: string | undefined;
  let served: ReadonlySet<number> = new Set(numbers);
  try {
    raw = parseConfig(configText, configFile);
    served = servedVersions(readVersionPolicy(raw, configFile), numbers);
  } catch (error) {
    configProblem = messageOf(error);
  }

  const versions: RepositoryVersion[] = [];
  /**
   * A version that was servable and whose files changed into something unusable (a model file
   * overwritten in place and read half-written, a config edited into an error) keeps its last good
   * read, so a worker keeps serving it, until its files read well again; the problem is noted.
   */
  const settle = (entry: RepositoryVersion): RepositoryVersion => {
    const known = previous?.version(name, entry.version);
    if (entry.problem === undefined || known?.model === undefined) return entry;
    problems.push(
      `${entry.path}: changed but cannot be served (${entry.problem}); serving its last good read`,
    );
    return { ...known, retired: entry.retired };
  };
  for (const version of numbers) {
    const versionDir = join(modelDir, String(version));
    const pipelineStamp = await fileStamp(join(versionDir, PIPELINE_FILE));
    const isPipeline = pipelineStamp !== undefined;
    const path = join(versionDir, isPipeline ? PIPELINE_FILE : MODEL_FILE);
    const stamp = isPipeline ? pipelineStamp : await fileStamp(path);
    const samples = await warmupFilesOf(versionDir);
    const fingerprint = [`${stamp ?? 'missing'}/${configHash}`, ...samples.map((s) => s.stamp)].join('/');
    const base = { name, version, path, fingerprint, retired: !served.has(version) };
    const known = previous?.version(name, version);
    if (known !== undefined && known.fingerprint === fingerprint && configProblem === undefined) {
      versions.push({ ...known, retired: base.retired });
      continue;
    }
    if (configProblem !== undefined) {
      versions.push(settle({ ...base, problem: configProblem }));
      continue;
    }
    if (stamp === undefined) {
      versions.push(settle({ ...base, problem: `${path}: missing` }));
      continue;
    }
    if (isPipeline) {
      try {
        if ((await fileStamp(join(versionDir, MODEL_FILE))) !== undefined)
          throw new Error(`${versionDir}: holds both ${MODEL_FILE} and ${PIPELINE_FILE}; keep one`);
        const read = await readPipelineVersion(path, raw, configFile);
        const model: ModelVersion = {
          name,
          version,
          path,
          signature: signatureOf(read.spec),
          config: read.config,
          fingerprint,
          pipeline: read.spec,
        };
        versions.push({ ...base, model });
      } catch (error) {
        versions.push(settle({ ...base, problem: messageOf(error) }));
      }
      continue;
    }
    if (samples.length > 1) {
      const names = samples.map((sample) => sample.file).join(' and ');
      versions.push(settle({ ...base, problem: `${names}: two warm-up samples; keep one` }));
      continue;
    }
    try {
      const signature = await readModelSignature(path);
      // The config is shared by every version, but inferred defaults and checks depend on each signature.
      const config = resolveModelConfig(raw, configFile, signature);
      const model: ModelVersion = { name, version, path, signature, config, fingerprint };
      const sample = samples[0];
      if (sample !== undefined)
        model.warmupSample = await readWarmupSample(
          sample.file,
          sample.format,
          signature,
          config.maxBatchSize,
        );
      versions.push({ ...base, model });
    } catch (error) {
      versions.push(settle({ ...base, problem: messageOf(error) }));
    }
  }
  return { name, versions };
}

/**
 * Reads `<dir>/<model>/config.json` (optional), `<dir>/<model>/<version>/model.onnx` and the
 * version's warm-up sample (optional, WARMUP_FILES), each model's signature from its file. Nothing in the folder is fatal but the folder itself missing: a version
 * whose config or model file cannot be used carries the reason (`problem`), and entries that are not
 * models or versions are listed in `problems`. `only` restricts reading to those models. With
 * `previous`, versions whose files did not change are taken from it instead of being read again.
 */
export async function loadModelRepository(
  dir: string,
  only?: readonly string[],
  previous?: ModelRepository,
): Promise<ModelRepository> {
  const root = resolve(dir);
  const entries = await readdir(root, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    throw new Error(
      `model repository ${root}: ${error.code === 'ENOENT' ? 'no such folder' : error.message}`,
    );
  });
  const problems: string[] = [];
  const names: string[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    if (!MODEL_NAME.test(entry.name)) {
      problems.push(`${join(root, entry.name)}: skipped; model names use letters, digits, '_', '.' and '-'`);
      continue;
    }
    if (only === undefined || only.includes(entry.name)) names.push(entry.name);
  }
  names.sort();
  for (const name of only ?? []) {
    if (!names.includes(name)) problems.push(`${root}: holds no model named '${name}' (MODELS)`);
  }

  const models = new Map<string, ModelEntry>();
  for (const name of names) {
    const modelDir = join(root, name);
    // A folder removed while it is read is simply not there this time.
    const model = await readModel(modelDir, name, previous, problems).catch((error: unknown) => {
      problems.push(`${modelDir}: skipped; ${messageOf(error)}`);
      return undefined;
    });
    if (model !== undefined) models.set(name, model);
  }
  const repository = repositoryOf(root, models, problems);
  // A read of some models only (a worker's MODELS) may lack a pipeline's models: those are checked
  // where the whole repository is read (the API), and by the worker when a step runs.
  if (only === undefined) await checkModelSteps(repository);
  return repository;
}

/** Each pipeline's model steps against the repository's models: a version that misses one is not servable. */
async function checkModelSteps(repository: ModelRepository): Promise<void> {
  const lookup = (name: string, version?: number): PipelineModelInfo | undefined => {
    const found = repository.get(name, version);
    return found === undefined || found.pipeline !== undefined ? undefined : found.signature;
  };
  for (const entry of repository.models()) {
    for (let index = 0; index < entry.versions.length; index++) {
      const version = entry.versions[index]!;
      if (version.model?.pipeline === undefined) continue;
      // A model that is there but cannot be served now makes the pipeline unavailable while it lasts
      // (the API's catalogue says so, with its reason), not unservable for good.
      const unservable = modelsOf(version.model.pipeline).some(
        ({ model, version: pinned }) =>
          repository.model(model) !== undefined && repository.get(model, pinned) === undefined,
      );
      if (unservable) continue;
      try {
        checkPipelineModels(version.path, JSON.parse(await readFile(version.path, 'utf8')), lookup);
      } catch (error) {
        const { model: _unservable, ...rest } = version;
        entry.versions[index] = { ...rest, problem: messageOf(error) };
      }
    }
  }
}

function repositoryOf(dir: string, models: Map<string, ModelEntry>, problems: string[]): ModelRepository {
  const servedOf = (entry: ModelEntry): RepositoryVersion[] => entry.versions.filter((v) => !v.retired);
  return {
    dir,
    problems,
    models: () => [...models.values()],
    model: (name) => models.get(name),
    list() {
      const infos: ModelInfo[] = [];
      for (const entry of models.values()) {
        const served = servedOf(entry).map((v) => v.version);
        if (served.length > 0)
          infos.push({ name: entry.name, versions: served, defaultVersion: served.at(-1)! });
      }
      return infos;
    },
    get(name, version) {
      const entry = models.get(name);
      if (entry === undefined) return undefined;
      const served = servedOf(entry);
      const found = version === undefined ? served.at(-1) : served.find((v) => v.version === version);
      return found?.model;
    },
    version(name, version) {
      return models.get(name)?.versions.find((v) => v.version === version);
    },
  };
}
