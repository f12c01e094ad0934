import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { POISON_INDEX, writePoisonModel } from '../faults/models.ts';

const ORT_SESSION = pathToFileURL(
  resolve(import.meta.dirname, '../../packages/runtime/src/ort-session.mjs'),
).href;
const dir = mkdtempSync(join(tmpdir(), 'inferq-ort-log-'));
const modelPath = writePoisonModel(join(dir, 'poison.onnx'));

/**
 * Runs the poison model on an index it cannot gather in a fresh process (onnxruntime's logger is
 * process-wide and set once) and returns what the process wrote.
 */
function failingRun(logLevel: string | undefined): { stdout: string; stderr: string } {
  const script = `
    const { openOrtSession, runOrtSession } = await import(${JSON.stringify(ORT_SESSION)});
    const { session } = await openOrtSession({ modelPath: ${JSON.stringify(modelPath)}, executionProviders: ['cpu'], intraOpThreads: 1, spinThreads: false });
    try {
      await runOrtSession(session, { index: { dtype: 'int64', shape: [1], data: BigInt64Array.of(${POISON_INDEX}n) } });
    } catch (error) {
      console.log('threw: ' + (/out of data bounds/.test(error.message) ? 'out of bounds' : error.message));
    }`;
  const env = { ...process.env };
  delete env.LOG_LEVEL;
  if (logLevel !== undefined) env.LOG_LEVEL = logLevel;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' });
  return { stdout: child.stdout, stderr: child.stderr };
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("onnxruntime's own log lines follow LOG_LEVEL", () => {
  it('at the default level a failed run is an error to the caller and nothing on stderr', () => {
    expect(failingRun(undefined)).toEqual({ stdout: 'threw: out of bounds\n', stderr: '' });
    expect(failingRun('info')).toEqual({ stdout: 'threw: out of bounds\n', stderr: '' });
  });

  it("at trace onnxruntime's own error line is printed too", () => {
    const { stdout, stderr } = failingRun('trace');
    expect(stdout).toBe('threw: out of bounds\n');
    expect(stderr).toMatch(/\[E:onnxruntime:/);
  });
});
