// The conformance run: every case of ONNX's node tests through onnxruntime-node directly, then through
// a running inferq (one repository of all of them), in MessagePack and in JSON; each case ends in one
// class of the table (report.ts).
import type { TensorMap } from '@inferq/protocol';
import { readModelSignature } from '@inferq/repository';
import { type ConformanceCase, DEFAULT_NODE_TESTS, listCases } from './cases.ts';
import { type Answer, ENCODINGS, type Encoding, infer } from './client.ts';
import { describeDifference, describeHeaderDifference } from './compare.ts';
import { type DirectOutcome, errorMessage, runDirect } from './direct.ts';

/** How a case ended; `wrong` is a failure of inferq, every other class is not. */
export type Verdict =
  /** Served in both encodings, equal to onnxruntime's direct output, which matches ONNX's expected one. */
  | { class: 'correct' }
  /** Served equal to onnxruntime's direct output; onnxruntime itself differs from the expected output. */
  | { class: 'onnxruntime-differs'; detail: string }
  /** A random operator: served with the dtypes and shapes onnxruntime gives (no two runs agree). */
  | { class: 'random' }
  /** onnxruntime refuses the case's inputs; inferq ends the request `failed` with its message. */
  | { class: 'run-refused'; detail: string }
  /**
   * inferq lists the version `unavailable`, with this reason; onnxruntime-node cannot run it either
   * (cannot load it, cannot feed it, or refuses its warm-up sample, the case's own first data set).
   */
  | { class: 'unavailable'; reason: string }
  | { class: 'wrong'; detail: string };

export interface CaseResult {
  name: string;
  verdict: Verdict;
}

/** What inferq says about a model version (GET /v1/models). */
export interface ServedState {
  state: 'ready' | 'unavailable' | 'loading' | 'retired' | 'absent';
  reason?: string;
}

/** What the direct run and the signature reader say about a case, before anything is served. */
export interface Prepared {
  testCase: ConformanceCase;
  direct: DirectOutcome;
  /** readModelSignature's error message, if it refuses the model. */
  signatureError: string | undefined;
}

export async function prepareCases(root: string = DEFAULT_NODE_TESTS): Promise<Prepared[]> {
  const prepared: Prepared[] = [];
  for (const testCase of listCases(root)) {
    let signatureError: string | undefined;
    try {
      await readModelSignature(testCase.modelPath);
    } catch (error) {
      signatureError = errorMessage(error);
    }
    prepared.push({ testCase, direct: await runDirect(testCase), signatureError });
  }
  return prepared;
}

/** Whether onnxruntime-node runs every data set of the case directly (so inferq must serve it). */
export function runsDirectly(prepared: Prepared): boolean {
  return prepared.direct.kind === 'loaded' && prepared.direct.runs.every(({ run }) => run.kind !== 'not-fed');
}

function describeAnswer(answer: Answer): string {
  if (answer.kind === 'failed') return `failed (${answer.code}): ${answer.message}`;
  if (answer.kind === 'refused') return `refused (${answer.status}): ${answer.detail}`;
  return 'succeeded';
}

function compareOutputs(
  served: TensorMap,
  direct: TensorMap,
  compare: typeof describeDifference,
): string | undefined {
  const names = new Set([...Object.keys(served), ...Object.keys(direct)]);
  for (const name of names) {
    const got = served[name];
    const want = direct[name];
    if (got === undefined) return `output '${name}' is missing`;
    if (want === undefined) return `output '${name}' is not one onnxruntime gives`;
    const problem = compare(got, want);
    if (problem !== undefined) return `output '${name}': ${problem}`;
  }
  return undefined;
}

/**
 * Submits every data set of a case in each encoding, one after the other, and judges the answers
 * against the direct run. `state` is what GET /v1/models says about the case's model.
 */
export async function judgeCase(baseUrl: string, prepared: Prepared, state: ServedState): Promise<Verdict> {
  const { testCase, direct } = prepared;
  if (!runsDirectly(prepared)) {
    if (state.state === 'unavailable') return { class: 'unavailable', reason: state.reason ?? '(no reason)' };
    const why =
      direct.kind === 'unloadable'
        ? direct.reason
        : direct.runs.map(({ run }) => (run.kind === 'not-fed' ? run.reason : '')).join('');
    return {
      class: 'wrong',
      detail: `onnxruntime-node cannot run it (${why}), but inferq lists it ${state.state}`,
    };
  }
  const first = direct.kind === 'loaded' ? direct.runs[0]?.run : undefined;
  if (
    state.state === 'unavailable' &&
    first?.kind === 'run-failed' &&
    state.reason === `warm-up failed: ${first.reason}`
  ) {
    // Its warm-up sample is its first data set, which onnxruntime refuses: nothing can warm it up.
    return { class: 'unavailable', reason: state.reason };
  }
  if (state.state !== 'ready') {
    return {
      class: 'wrong',
      detail: `onnxruntime-node runs it, but inferq lists it ${state.state}${state.reason ? `: ${state.reason}` : ''}`,
    };
  }
  if (direct.kind !== 'loaded') throw new Error('unreachable');
  let differs: string | undefined;
  let random = false;
  let refused: string | undefined;
  for (const { dataSet, run } of direct.runs) {
    for (const encoding of ENCODINGS) {
      const where = `${dataSet.name} ${encoding}`;
      if (run.kind === 'not-fed') throw new Error('unreachable');
      if (run.kind === 'run-failed') {
        // onnxruntime refuses these inputs: the request has to fail, with onnxruntime's message.
        const answer = await infer(baseUrl, testCase.name, run.inputs, encoding);
        if (answer.kind !== 'failed' || !answer.message.includes(firstLine(run.reason))) {
          return {
            class: 'wrong',
            detail: `${where}: onnxruntime fails (${run.reason}); inferq ${describeAnswer(answer)}`,
          };
        }
        refused ??= run.reason;
        continue;
      }
      const answer = await infer(baseUrl, testCase.name, run.inputs, encoding);
      if (answer.kind !== 'succeeded') {
        return { class: 'wrong', detail: `${where}: onnxruntime runs it; inferq ${describeAnswer(answer)}` };
      }
      const problem = compareOutputs(
        answer.outputs,
        run.outputs,
        run.deterministic ? describeDifference : describeHeaderDifference,
      );
      if (problem !== undefined) {
        return { class: 'wrong', detail: `${where}: served ≠ onnxruntime direct: ${problem}` };
      }
      if (!run.deterministic) random = true;
      else if (run.mismatch !== undefined) differs ??= run.mismatch;
    }
  }
  if (refused !== undefined) return { class: 'run-refused', detail: refused };
  if (random) return { class: 'random' };
  if (differs !== undefined) return { class: 'onnxruntime-differs', detail: differs };
  return { class: 'correct' };
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0] ?? '';
}

export type { Encoding };

// ---------------------------------------------------------------------------------------------
// Serving

/** One entry of a model's `versionStates` (GET /v1/models, docs/models.md "Model states"). */
interface VersionState {
  version: number;
  state: ServedState['state'];
  reason?: string;
}

/** The repository gives every case version 1. */
const CASE_VERSION = 1;

/** Each model's version 1 per GET /v1/models: its `state` and, when unavailable, the `reason`. */
export async function servedStates(baseUrl: string): Promise<Map<string, ServedState>> {
  const response = await fetch(`${baseUrl}/v1/models`, { headers: { accept: 'application/json' } });
  if (response.status !== 200) throw new Error(`GET /v1/models answered ${response.status}`);
  const { models } = (await response.json()) as { models: { name: string; versionStates: VersionState[] }[] };
  const states = new Map<string, ServedState>();
  for (const model of models) {
    const listed = model.versionStates.find((entry) => entry.version === CASE_VERSION);
    if (listed === undefined)
      throw new Error(`GET /v1/models lists no version ${CASE_VERSION} of ${model.name}`);
    const state: ServedState = { state: listed.state };
    if (listed.reason !== undefined) state.reason = listed.reason;
    states.set(model.name, state);
  }
  return states;
}

/** Runs `task` over `items` with at most `limit` at a time, results in order. */
export async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index] as T);
    }
  });
  await Promise.all(lanes);
  return results;
}

/** Judges every prepared case against a running inferq serving all of them. */
export async function judgeAll(
  baseUrl: string,
  prepared: readonly Prepared[],
  concurrency = 4,
): Promise<CaseResult[]> {
  const states = await servedStates(baseUrl);
  return mapLimited(prepared, concurrency, async (item) => {
    const name = item.testCase.name;
    const state = states.get(name) ?? { state: 'absent' };
    try {
      return { name, verdict: await judgeCase(baseUrl, item, state) };
    } catch (error) {
      return { name, verdict: { class: 'wrong', detail: `the client failed: ${errorMessage(error)}` } };
    }
  });
}
