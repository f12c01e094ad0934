// The model repository of the conformance suite: one model per case, `<dir>/<case>/1/model.onnx`,
// with inferq's defaults (no config.json), as for a third-party model dropped in, and the case's
// first data set as its warm-up sample (`1/warmup.msgpack`, docs/models.md "Warm-up samples"): a
// single-operator model's zeros are often inputs it refuses (a modulo by zero, a Resize to scale 0).
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TensorMap } from '@inferq/protocol';
import type { ConformanceCase } from './cases.ts';
import { encodeBody } from './client.ts';
import { readTensorProto } from './tensor-proto.ts';

/** Model names inferq accepts (packages/repository/src/repository.ts). */
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * The inputs of the case's first data set by graph input name; undefined when a value is not a
 * tensor inferq carries (the signature reader refuses the model then anyway).
 */
function firstDataSetInputs(testCase: ConformanceCase): TensorMap | undefined {
  const dataSet = testCase.dataSets[0];
  if (dataSet === undefined || testCase.inputs.some((value) => value.kind !== 'tensor')) return undefined;
  const inputs: TensorMap = {};
  try {
    testCase.inputs.forEach((value, i) => {
      const file = dataSet.inputs[i];
      if (file !== undefined) inputs[value.name] = readTensorProto(file);
    });
  } catch {
    return undefined;
  }
  return inputs;
}

/** Writes the repository under `dir` (which must be empty or absent) and returns it. */
export function buildRepository(dir: string, cases: readonly ConformanceCase[]): string {
  for (const testCase of cases) {
    if (!MODEL_NAME.test(testCase.name)) {
      throw new Error(`case '${testCase.name}' is not a valid inferq model name`);
    }
    const versionDir = join(dir, testCase.name, '1');
    mkdirSync(versionDir, { recursive: true });
    copyFileSync(testCase.modelPath, join(versionDir, 'model.onnx'));
    const sample = firstDataSetInputs(testCase);
    if (sample !== undefined)
      writeFileSync(join(versionDir, 'warmup.msgpack'), encodeBody(sample, 'msgpack', {}));
  }
  return dir;
}
