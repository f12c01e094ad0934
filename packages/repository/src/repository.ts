import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { ModelSignature } from '@inferq/protocol';
import { type ModelConfig, ModelConfigError, resolveModelConfig } from './config.ts';
import { readModelSignature } from './signature.ts';

/** One servable model file: a version of a model with its signature and resolved config. */
export interface ModelVersion {
  name: string;
  version: number;
  /** Absolute path of model.onnx. */
  path: string;
  signature: ModelSignature;
  config: ModelConfig;
}

export interface ModelInfo {
  name: string;
  /** Ascending. */
  versions: number[];
  /** The highest version. */
  defaultVersion: number;
}

export interface ModelRepository {
  /** Absolute path of the repository folder. */
  readonly dir: string;
  /** Models sorted by name. */
  list(): ModelInfo[];
  /** A version of a model; the default (highest) version when `version` is omitted. */
  get(name: string, version?: number): ModelVersion | undefined;
}

export const CONFIG_FILE = 'config.json';
export const MODEL_FILE = 'model.onnx';

/** Model names end up in URLs, Redis keys and metric labels. */
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const VERSION_NAME = /^[0-9]+$/;

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}

async function readConfigFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ModelConfigError(file, '(root)', `not valid JSON: ${(error as Error).message}`);
  }
}

async function loadModel(modelDir: string, name: string): Promise<ModelVersion[]> {
  const entries = await readdir(modelDir, { withFileTypes: true });
  const versionNumbers: number[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory() || !VERSION_NAME.test(entry.name)) continue;
    const version = Number(entry.name);
    if (version < 1 || String(version) !== entry.name || !Number.isSafeInteger(version)) {
      throw new Error(`${join(modelDir, entry.name)}: versions are positive integers without leading zeros`);
    }
    const modelPath = join(modelDir, entry.name, MODEL_FILE);
    if (!(await isFile(modelPath))) throw new Error(`${modelPath}: missing`);
    versionNumbers.push(version);
  }
  if (versionNumbers.length === 0) {
    throw new Error(`${modelDir}: model '${name}' has no version folder holding ${MODEL_FILE}`);
  }
  versionNumbers.sort((a, b) => a - b);

  const configFile = join(modelDir, CONFIG_FILE);
  const rawConfig = await readConfigFile(configFile);
  const versions: ModelVersion[] = [];
  for (const version of versionNumbers) {
    const path = join(modelDir, String(version), MODEL_FILE);
    const signature = await readModelSignature(path);
    // The config is shared by every version, but inferred defaults and checks depend on each signature.
    const config = resolveModelConfig(rawConfig, configFile, signature);
    versions.push({ name, version, path, signature, config });
  }
  return versions;
}

/**
 * Reads `<dir>/<model>/config.json` (optional) and `<dir>/<model>/<version>/model.onnx`, opening each
 * model once to learn its signature. `only` restricts loading to those models (each must exist).
 * Folders starting with '.' are ignored; anything else malformed is an error naming the path.
 */
export async function loadModelRepository(dir: string, only?: readonly string[]): Promise<ModelRepository> {
  const root = resolve(dir);
  const entries = await readdir(root, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    throw new Error(
      `model repository ${root}: ${error.code === 'ENOENT' ? 'no such folder' : error.message}`,
    );
  });
  const modelNames = entries
    .filter((entry) => entry.isDirectory() && !entry.name.startsWith('.'))
    .map((entry) => entry.name)
    .sort();

  for (const name of modelNames) {
    if (!MODEL_NAME.test(name)) {
      throw new Error(`${join(root, name)}: model names use letters, digits, '_', '.' and '-'`);
    }
  }
  if (only !== undefined) {
    const missing = only.filter((name) => !modelNames.includes(name));
    if (missing.length > 0) {
      throw new Error(
        `model repository ${root} has no model named ${missing.map((n) => `'${n}'`).join(', ')}`,
      );
    }
  }
  const selected = only === undefined ? modelNames : modelNames.filter((name) => only.includes(name));
  if (selected.length === 0) throw new Error(`model repository ${root} holds no models`);

  const models = new Map<string, ModelVersion[]>();
  for (const name of selected) models.set(name, await loadModel(join(root, name), name));

  return {
    dir: root,
    list() {
      return [...models].map(([name, versions]) => ({
        name,
        versions: versions.map((v) => v.version),
        defaultVersion: versions.at(-1)!.version,
      }));
    },
    get(name, version) {
      const versions = models.get(name);
      if (versions === undefined) return undefined;
      return version === undefined ? versions.at(-1) : versions.find((v) => v.version === version);
    },
  };
}
