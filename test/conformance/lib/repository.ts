// The model repository of the conformance suite: one model per case, `<dir>/<case>/1/model.onnx`,
// and a config.json that changes one default (CONFIG below); everything else is inferq's defaults,
// as for a third-party model dropped in.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ConformanceCase } from './cases.ts';

/** Model names inferq accepts (packages/repository/src/repository.ts). */
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * `placement: main`: every case is one operator on a few elements, whose runs take microseconds, so
 * `auto` would place each on the main thread anyway; but `auto` decides by opening each model in a
 * worker thread of its own first and timing three warm-up runs there (packages/runtime/src/session.ts),
 * which costs about 160 ms per model: 811 models take 133 s to start instead of 5 s, past the 60 s
 * `inferq serve` waits for readiness (docs/conformance.md, "Start-up").
 */
export const CONFIG = { placement: 'main' } as const;

/** Writes the repository under `dir` (which must be empty or absent) and returns it. */
export function buildRepository(dir: string, cases: readonly ConformanceCase[]): string {
  for (const testCase of cases) {
    if (!MODEL_NAME.test(testCase.name)) {
      throw new Error(`case '${testCase.name}' is not a valid inferq model name`);
    }
    const versionDir = join(dir, testCase.name, '1');
    mkdirSync(versionDir, { recursive: true });
    copyFileSync(testCase.modelPath, join(versionDir, 'model.onnx'));
    writeFileSync(join(dir, testCase.name, 'config.json'), `${JSON.stringify(CONFIG)}\n`);
  }
  return dir;
}
