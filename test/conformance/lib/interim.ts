// Until model states land (a version onnxruntime cannot load, or whose warm-up fails, becomes
// `unavailable` instead of stopping the worker), a repository holding one such model never gets
// ready: the worker exits at start-up. Until then the suite leaves those cases out and says why.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelRepository } from '@inferq/repository';
import { ModelSession } from '@inferq/runtime';
import { errorMessage } from './direct.ts';
import { buildRepository } from './repository.ts';
import { type Prepared, runsDirectly } from './run.ts';

/** Case name -> why today's worker would exit at start-up with it in the repository. */
export async function casesTodaysWorkerCannotStart(
  prepared: readonly Prepared[],
): Promise<Map<string, string>> {
  const excluded = new Map<string, string>();
  const candidates: Prepared[] = [];
  for (const item of prepared) {
    if (item.signatureError !== undefined) {
      excluded.set(item.testCase.name, `today's worker exits: ${item.signatureError}`);
    } else if (item.direct.kind === 'unloadable') {
      excluded.set(
        item.testCase.name,
        `today's worker exits: onnxruntime cannot load it: ${item.direct.reason}`,
      );
    } else if (!runsDirectly(item)) {
      excluded.set(item.testCase.name, "today's worker exits: onnxruntime-node cannot feed it");
    } else {
      candidates.push(item);
    }
  }
  // The worker warms every model up on zeros (packages/runtime/src/session.ts) and exits when that fails.
  const dir = mkdtempSync(join(tmpdir(), 'inferq-conformance-probe-'));
  try {
    buildRepository(
      dir,
      candidates.map((item) => item.testCase),
    );
    const repository = await loadModelRepository(dir);
    for (const info of repository.list()) {
      const version = repository.get(info.name);
      if (version === undefined) continue;
      const session = await ModelSession.open(version, { placement: 'main' });
      try {
        await session.warmup();
      } catch (error) {
        excluded.set(info.name, `today's worker exits: its warm-up on zeros fails: ${errorMessage(error)}`);
      } finally {
        await session.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return excluded;
}
