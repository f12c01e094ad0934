import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RequestRecord } from '@inferq/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  defaultResultsPath,
  FinishedInputs,
  isFinalStatus,
  parseResultLine,
  type ResultLine,
  ResultsFile,
  recordResultLine,
  refusedResultLine,
} from './results-file.ts';

const SHA = 'a'.repeat(64);
const OTHER_SHA = 'b'.repeat(64);

function line(fields: Partial<ResultLine>): ResultLine {
  return { line: 1, sha256: SHA, model: 'noop', version: 1, id: 'r1', status: 'succeeded', ...fields };
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'inferq-bulk-results-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('defaultResultsPath', () => {
  it('puts the results beside the input, named after it', () => {
    expect(defaultResultsPath('data/requests.ndjson')).toBe(join('data', 'requests.results.ndjson'));
    expect(defaultResultsPath('requests.JSONL')).toBe('requests.results.ndjson');
    expect(defaultResultsPath('in.txt')).toBe('in.txt.results.ndjson');
    expect(defaultResultsPath('/tmp/scans/')).toBe('/tmp/scans.results.ndjson');
  });
});

describe('recordResultLine and refusedResultLine', () => {
  it("writes a finished request's outputs in the API's JSON form", () => {
    const record: RequestRecord = {
      id: 'req-1',
      model: 'noop',
      version: 2,
      status: 'succeeded',
      cached: true,
      createdAt: '2025-01-01T00:00:00.000Z',
      timings: { queueMs: 1, batchWaitMs: 0, inferMs: 1, totalMs: 2 },
      outputs: { y: { dtype: 'float32', shape: [1, 2], data: new Float32Array([1.5, -2]) } },
    };
    expect(recordResultLine({ ref: { line: 4 }, sha256: SHA }, record)).toEqual({
      line: 4,
      sha256: SHA,
      model: 'noop',
      version: 2,
      id: 'req-1',
      status: 'succeeded',
      cached: true,
      outputs: { y: { dtype: 'float32', shape: [1, 2], data: [1.5, -2] } },
    });
  });

  it("writes a failed request's error, and an input that never became a request", () => {
    const record: RequestRecord = {
      id: 'req-2',
      model: 'noop',
      version: 1,
      status: 'failed',
      cached: false,
      createdAt: '2025-01-01T00:00:00.000Z',
      timings: { queueMs: 1, batchWaitMs: 0, inferMs: 1, totalMs: 2 },
      error: { code: 'inference_failed', message: 'boom' },
    };
    expect(recordResultLine({ ref: { file: 'a.json' }, sha256: SHA }, record)).toMatchObject({
      file: 'a.json',
      status: 'failed',
      error: { code: 'inference_failed', message: 'boom' },
    });
    expect(
      refusedResultLine(
        { ref: { line: 2 }, sha256: SHA },
        { model: 'noop', version: undefined },
        'rejected',
        {
          code: 'unprocessable',
          message: 'bad shape',
        },
      ),
    ).toEqual({
      line: 2,
      sha256: SHA,
      model: 'noop',
      version: null,
      id: null,
      status: 'rejected',
      error: { code: 'unprocessable', message: 'bad shape' },
    });
  });
});

describe('parseResultLine', () => {
  it('reads our lines and nothing else', () => {
    expect(parseResultLine(JSON.stringify(line({})))).toEqual(line({}));
    expect(parseResultLine('{"line":1,"sha256":"x","model":"noop","status":"queued"}')).toBeUndefined();
    expect(parseResultLine('{"sha256":"x","model":"noop","status":"succeeded"}')).toBeUndefined();
    expect(parseResultLine('{"line":1,"sha256":"x","model":"no')).toBeUndefined();
    expect(parseResultLine('[]')).toBeUndefined();
  });

  it('knows the final statuses', () => {
    expect(['succeeded', 'failed', 'cancelled', 'expired', 'rejected', 'invalid'].every(isFinalStatus)).toBe(
      true,
    );
    expect(['queued', 'running', 'unfinished'].some(isFinalStatus)).toBe(false);
  });
});

describe('FinishedInputs', () => {
  it("finds an input by place and content, for the run's model, the last line winning", () => {
    const finished = new FinishedInputs({ model: 'noop', version: undefined });
    finished.add(line({ line: 1, status: 'failed' }));
    finished.add(line({ line: 1, status: 'succeeded', id: 'r2' }));
    finished.add(line({ line: 2, model: 'other' }));
    finished.add(line({ line: undefined, file: 'a.json', sha256: OTHER_SHA }));
    expect(finished.get({ ref: { line: 1 }, sha256: SHA })).toMatchObject({ id: 'r2', status: 'succeeded' });
    // Edited since: not done.
    expect(finished.get({ ref: { line: 1 }, sha256: OTHER_SHA })).toBeUndefined();
    // Another model's result.
    expect(finished.get({ ref: { line: 2 }, sha256: SHA })).toBeUndefined();
    expect(finished.get({ ref: { file: 'a.json' }, sha256: OTHER_SHA })).toBeDefined();
    expect(finished.size).toBe(2);
  });

  it('takes only the version asked for, when one is', () => {
    const finished = new FinishedInputs({ model: 'noop', version: 2 });
    finished.add(line({ line: 1, version: 1 }));
    finished.add(line({ line: 2, version: 2 }));
    expect(finished.get({ ref: { line: 1 }, sha256: SHA })).toBeUndefined();
    expect(finished.get({ ref: { line: 2 }, sha256: SHA })).toBeDefined();
  });
});

describe('ResultsFile', () => {
  it('reads what an earlier run left, cuts a line a crash cut short, and appends whole lines', async () => {
    const path = join(dir, 'results.ndjson');
    const first = JSON.stringify(line({ line: 1 }));
    writeFileSync(path, `${first}\nnot ours\n{"line":2,"sha256":"${SHA}","mo`);
    const file = await ResultsFile.open(path, { model: 'noop', version: undefined });
    expect(file.finished.size).toBe(1);
    expect(file.finished.get({ ref: { line: 1 }, sha256: SHA })).toBeDefined();
    file.append(line({ line: 2 }));
    file.close();
    expect(readFileSync(path, 'utf8')).toBe(`${first}\nnot ours\n${JSON.stringify(line({ line: 2 }))}\n`);
  });

  it('starts a file that does not exist, and one whose only line was cut short', async () => {
    const fresh = await ResultsFile.open(join(dir, 'new.ndjson'), { model: 'noop', version: undefined });
    expect(fresh.finished.size).toBe(0);
    fresh.close();
    const cut = join(dir, 'cut.ndjson');
    writeFileSync(cut, '{"line":1,');
    const file = await ResultsFile.open(cut, { model: 'noop', version: undefined });
    file.append(line({}));
    file.close();
    expect(readFileSync(cut, 'utf8')).toBe(`${JSON.stringify(line({}))}\n`);
  });
});
