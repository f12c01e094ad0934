// What onnxruntime-node does with a case on its own, with the session options an inferq worker uses
// (packages/runtime/src/ort-session.mjs): the reference every served answer is held to.
import type { Tensor, TensorMap } from '@inferq/protocol';
import ort from 'onnxruntime-node';
import type { ConformanceCase, DataSet } from './cases.ts';
import { describeDifference, describeMismatch } from './compare.ts';
import { DTYPE_OF_ELEMENT, elementTypeName, readTensorProto } from './tensor-proto.ts';

/** The options inferq's worker opens every session with (cpu, default thread counts). */
export const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  executionProviders: ['cpu'],
  graphOptimizationLevel: 'all',
  logSeverityLevel: 4,
  extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
};

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** What onnxruntime-node did with one data set of a case it loaded. */
export type DirectRun =
  /** The data set cannot be given to onnxruntime-node (a sequence, a bfloat16 tensor…). */
  | { kind: 'not-fed'; reason: string }
  /** session.run rejected the inputs. */
  | { kind: 'run-failed'; reason: string; inputs: TensorMap }
  | {
      kind: 'ran';
      /** The data set's inputs by graph input name. */
      inputs: TensorMap;
      /** onnxruntime's outputs by graph output name. */
      outputs: TensorMap;
      /** ONNX's expected outputs by graph output name. */
      expected: TensorMap;
      /** Undefined when every output matches the expected one within the tolerance. */
      mismatch: string | undefined;
      /** False when another run gave other values (random operators). */
      deterministic: boolean;
    };

export type DirectOutcome =
  | { kind: 'unloadable'; reason: string }
  | { kind: 'loaded'; runs: { dataSet: DataSet; run: DirectRun }[] };

function toInferq(value: ort.OnnxValue): Tensor {
  const tensor = value as ort.Tensor;
  return {
    dtype: tensor.type as Tensor['dtype'],
    shape: [...tensor.dims],
    data: tensor.data as Tensor['data'],
  };
}

function toOrt(tensor: Tensor): ort.Tensor {
  return new ort.Tensor(tensor.dtype, tensor.data as ort.Tensor.DataType, tensor.shape);
}

/** Why a graph value cannot be fed or fetched through onnxruntime-node as a tensor, if it cannot. */
function unfeedable(testCase: ConformanceCase): string | undefined {
  for (const [role, values] of [
    ['input', testCase.inputs],
    ['output', testCase.outputs],
  ] as const) {
    for (const value of values) {
      if (value.kind !== 'tensor') return `${role} '${value.name}' is a ${value.kind}`;
      if (!DTYPE_OF_ELEMENT.has(value.elemType)) {
        return `${role} '${value.name}' has element type ${elementTypeName(value.elemType)}`;
      }
    }
  }
  return undefined;
}

/**
 * The same values at the start of a fresh buffer: 16-byte aligned (malloc'd, and over 64 bytes so
 * that V8 keeps it off its heap). onnxruntime's vectorised kernels round differently for an input
 * that starts 4, 8 or 12 bytes past a 16-byte boundary (a TensorProto's raw bytes may sit anywhere);
 * the worker copies any such input before a run (packages/runtime/src/session.ts), so this is the
 * placement every served result must match.
 */
function aligned(tensor: Tensor): Tensor {
  if (Array.isArray(tensor.data)) return tensor;
  const data = tensor.data;
  const bytes = new Uint8Array(data.byteLength + 128);
  bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  const View = data.constructor as new (buffer: ArrayBuffer, offset: number, length: number) => typeof data;
  return { ...tensor, data: new View(bytes.buffer, 0, data.length) };
}

/**
 * Runs of each data set in one session; a case whose runs differ is random. Two are not enough:
 * training-mode Dropout with a `seed` draws its mask from a generator that advances between runs,
 * yet its first two runs agree (onnxruntime 1.30), so a served answer, which comes after the
 * warm-up runs, differs from the first direct run.
 */
const DETERMINISM_RUNS = 4;

async function runOnce(session: ort.InferenceSession, inputs: TensorMap): Promise<TensorMap> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, tensor] of Object.entries(inputs)) feeds[name] = toOrt(aligned(tensor));
  const results = await session.run(feeds);
  const outputs: TensorMap = {};
  for (const [name, value] of Object.entries(results)) outputs[name] = toInferq(value);
  return outputs;
}

async function runDataSet(
  session: ort.InferenceSession,
  testCase: ConformanceCase,
  dataSet: DataSet,
): Promise<DirectRun> {
  const blocked = unfeedable(testCase);
  if (blocked !== undefined) return { kind: 'not-fed', reason: blocked };
  const inputs: TensorMap = {};
  const expected: TensorMap = {};
  testCase.inputs.forEach((value, i) => {
    const file = dataSet.inputs[i];
    if (file !== undefined) inputs[value.name] = readTensorProto(file);
  });
  testCase.outputs.forEach((value, i) => {
    const file = dataSet.outputs[i];
    if (file !== undefined) expected[value.name] = readTensorProto(file);
  });
  let outputs: TensorMap;
  const again: TensorMap[] = [];
  try {
    outputs = await runOnce(session, inputs);
    for (let run = 1; run < DETERMINISM_RUNS; run++) again.push(await runOnce(session, inputs));
  } catch (error) {
    return { kind: 'run-failed', reason: errorMessage(error), inputs };
  }
  let mismatch: string | undefined;
  let deterministic = true;
  for (const [name, want] of Object.entries(expected)) {
    const got = outputs[name];
    const problem = got === undefined ? 'missing' : describeMismatch(got, want);
    if (problem !== undefined) {
      mismatch ??= `output '${name}': ${problem}`;
    }
  }
  for (const [name, got] of Object.entries(outputs)) {
    for (const other of again) {
      const value = other[name];
      if (value === undefined || describeDifference(value, got) !== undefined) deterministic = false;
    }
  }
  return { kind: 'ran', inputs, outputs, expected, mismatch, deterministic };
}

/** Opens the case's model with inferq's session options and runs every data set (DETERMINISM_RUNS times). */
export async function runDirect(testCase: ConformanceCase): Promise<DirectOutcome> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(testCase.modelPath, SESSION_OPTIONS);
  } catch (error) {
    return { kind: 'unloadable', reason: errorMessage(error) };
  }
  try {
    const runs: { dataSet: DataSet; run: DirectRun }[] = [];
    for (const dataSet of testCase.dataSets) {
      runs.push({ dataSet, run: await runDataSet(session, testCase, dataSet) });
    }
    return { kind: 'loaded', runs };
  } finally {
    await session.release();
  }
}

/** Opens a model as inferq's worker would, for its metadata; undefined when it cannot be loaded. */
export async function openDirect(modelPath: string): Promise<ort.InferenceSession | undefined> {
  try {
    return await ort.InferenceSession.create(modelPath, SESSION_OPTIONS);
  } catch {
    return undefined;
  }
}
