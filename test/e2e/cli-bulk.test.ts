/**
 * Issue 15 item 3: `inferq submit --bulk` against a running `inferq serve`. Requests go through
 * infer:bulk, every input gets one line in the results file, refusals are written and counted, and
 * a run stopped by SIGINT resumes without any request being run twice: the API's own count of the
 * requests it accepted (`inferq_requests_total`) says so.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AllInOne, startAllInOne } from '../helpers/processes.ts';

const REPO_ROOT = resolve(import.meta.dirname, '..', '..');
const CLI = 'apps/cli/dist/main.js';

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Summary {
  total: number;
  succeeded: number;
  failed: number;
  skipped: number;
  skippedFailed: number;
  unfinished: number;
  interrupted: boolean;
  out: string;
}

interface ResultLine {
  line?: number;
  file?: string;
  sha256: string;
  model: string;
  id: string | null;
  status: string;
  cached?: boolean;
  outputs?: Record<string, { dtype: string; shape: number[]; data: unknown[] }>;
  error?: { code: string; message: string };
}

/** Starts the CLI as a user's shell would (no REDIS_URL or INFERQ_URL from the test runner). */
function startCli(args: string[]): { child: ChildProcess; exited: Promise<Exit> } {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env))
    if (name === 'REDIS_URL' || name === 'INFERQ_URL' || name.startsWith('npm_')) delete env[name];
  delete env.QUEUE_BACKEND;
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const exited = new Promise<Exit>((done) => child.once('close', (code) => done({ code, stdout, stderr })));
  return { child, exited };
}

function summaryOf(exit: Exit): Summary {
  return JSON.parse(exit.stdout) as Summary;
}

/** The request body of input `n`: distinct data for every n, so no two share a cache entry. */
function noopBody(n: number): { inputs: { x: { dtype: string; shape: number[]; data: number[] } } } {
  return { inputs: { x: { dtype: 'float32', shape: [1, 4], data: [n, n + 0.5, -n, 7] } } };
}

function readResults(path: string): ResultLine[] {
  if (!existsSync(path)) return [];
  const text = readFileSync(path, 'utf8');
  // Every line is whole: the file ends with a line break, or is empty.
  expect(text === '' || text.endsWith('\n')).toBe(true);
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as ResultLine);
}

/** Lines written so far (while the CLI may be writing one). */
function completeLines(path: string): number {
  if (!existsSync(path)) return 0;
  return readFileSync(path, 'utf8').split('\n').length - 1;
}

describe('inferq submit --bulk, against a running inferq serve', () => {
  let app: AllInOne;
  let dataDir: string;
  let work: string;

  beforeAll(async () => {
    app = await startAllInOne();
    const match = /data in (\S+);/.exec(app.output());
    if (match === null) throw new Error(`no data folder in:\n${app.output()}`);
    dataDir = match[1] as string;
    work = mkdtempSync(join(tmpdir(), 'inferq-bulk-e2e-'));
  });

  afterAll(async () => {
    await app?.stop();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  /** `inferq_requests_total` of the noop model on the API, by status. */
  async function noopRequests(): Promise<Record<string, number>> {
    const text = await (await fetch(`${app.url}/metrics`)).text();
    const counts: Record<string, number> = {};
    for (const match of text.matchAll(/^inferq_requests_total\{([^}]*)\} (\S+)$/gm)) {
      const labels = match[1] as string;
      if (!labels.includes('model="noop"')) continue;
      const status = /status="([^"]+)"/.exec(labels)?.[1] as string;
      counts[status] = (counts[status] ?? 0) + Number(match[2]);
    }
    return counts;
  }

  /** Requests the API took on (new, from the cache, or following a twin), not replays or refusals. */
  function accepted(counts: Record<string, number>): number {
    return (counts.queued ?? 0) + (counts.cached ?? 0) + (counts.coalesced ?? 0);
  }

  async function queue(action: 'pause' | 'resume'): Promise<void> {
    const result = await startCli(['queue', action, 'noop', '--data-dir', dataDir]).exited;
    expect(result.code, result.stderr).toBe(0);
  }

  function expectNoopResult(result: ResultLine | undefined, n: number): void {
    expect(result).toMatchObject({ model: 'noop', status: 'succeeded' });
    expect(result?.outputs?.y).toEqual({ dtype: 'float32', shape: [1, 4], data: noopBody(n).inputs.x.data });
  }

  it('writes one correct result per line, records the lines the API refuses or cannot read, and exits 1 with the counts', async () => {
    // 50 good lines; line 11 has the wrong shape, line 22 the wrong dtype, line 33 is no JSON; line 44 is blank.
    const lines: string[] = [];
    const good = new Map<number, number>();
    for (let n = 0; lines.length < 54; n += 1) {
      const line = lines.length + 1;
      if (line === 11)
        lines.push(JSON.stringify({ inputs: { x: { dtype: 'float32', shape: [1, 3], data: [1, 2, 3] } } }));
      else if (line === 22)
        lines.push(JSON.stringify({ inputs: { x: { dtype: 'int32', shape: [1, 4], data: [1, 2, 3, 4] } } }));
      else if (line === 33) lines.push('{"inputs": not json');
      else if (line === 44) lines.push('');
      else {
        lines.push(JSON.stringify(noopBody(1000 + n)));
        good.set(line, 1000 + n);
      }
    }
    const input = join(work, 'mixed.ndjson');
    writeFileSync(input, `${lines.join('\n')}\n`);
    const before = await noopRequests();

    const exit = await startCli(['submit', 'noop', '--bulk', input, '--url', app.url, '--chunk-size', '8'])
      .exited;

    expect(exit.code, exit.stderr).toBe(1);
    const out = join(work, 'mixed.results.ndjson');
    expect(summaryOf(exit)).toMatchObject({
      total: 53,
      succeeded: 50,
      failed: 3,
      skipped: 0,
      unfinished: 0,
      interrupted: false,
      out,
    });
    expect(exit.stderr).toContain(
      'inferq: 53 inputs: 50 succeeded, 3 failed, 0 skipped (done earlier), 0 unfinished in ',
    );
    const results = readResults(out);
    expect(results).toHaveLength(53);
    const byLine = new Map(results.map((result) => [result.line, result]));
    expect(byLine.size).toBe(53);
    for (const [line, n] of good) expectNoopResult(byLine.get(line), n);
    expect(new Set(results.map((result) => result.id).filter((id) => id !== null)).size).toBe(50);
    expect(byLine.get(11)).toMatchObject({
      id: null,
      status: 'rejected',
      error: { code: 'unprocessable', message: expect.stringContaining("input 'x'") },
    });
    expect(byLine.get(22)).toMatchObject({ id: null, status: 'rejected', error: { code: 'unprocessable' } });
    expect(byLine.get(33)).toMatchObject({
      id: null,
      status: 'invalid',
      error: { code: 'invalid-input', message: expect.stringMatching(/^line 33: body is not valid JSON/) },
    });
    expect(byLine.has(44)).toBe(false);
    expect(accepted(await noopRequests()) - accepted(before)).toBe(50);
  });

  it('sends a folder of request files, and a second run skips them all without a request', async () => {
    const folder = join(work, 'requests');
    mkdirSync(join(folder, 'more'), { recursive: true });
    writeFileSync(join(folder, 'a.json'), JSON.stringify(noopBody(2001)));
    writeFileSync(join(folder, 'more', 'b.json'), JSON.stringify(noopBody(2002)));
    writeFileSync(join(folder, 'notes.txt'), 'not an input');
    const out = join(work, 'folder-results.ndjson');
    const args = ['submit', 'noop', '--bulk', folder, '--url', app.url, '--out', out];

    const first = await startCli(args).exited;
    expect(first.code, first.stderr).toBe(0);
    expect(summaryOf(first)).toMatchObject({ total: 2, succeeded: 2, failed: 0, skipped: 0, unfinished: 0 });
    const results = readResults(out);
    expect(results.map((result) => result.file).sort()).toEqual(['a.json', 'more/b.json']);
    expectNoopResult(
      results.find((result) => result.file === 'a.json'),
      2001,
    );
    expectNoopResult(
      results.find((result) => result.file === 'more/b.json'),
      2002,
    );

    const before = await noopRequests();
    const second = await startCli(args).exited;
    expect(second.code, second.stderr).toBe(0);
    expect(summaryOf(second)).toMatchObject({ total: 2, succeeded: 0, failed: 0, skipped: 2, unfinished: 0 });
    expect(readResults(out)).toHaveLength(2);
    expect(await noopRequests()).toEqual(before);
  });

  it('stops cleanly on SIGINT, and the next run finishes without running a request twice', async () => {
    // 40 inputs in chunks of 10, two chunks in flight. The first 5 are in the cache (so they finish
    // while the queue is paused); the queue is paused, so the rest of the first two chunks stay
    // accepted but unfinished, and the CLI cannot start a third chunk: a known state, whatever the
    // machine's speed, in which to interrupt it.
    const count = 40;
    const input = join(work, 'interrupted.ndjson');
    writeFileSync(
      input,
      `${Array.from({ length: count }, (_, i) => JSON.stringify(noopBody(5000 + i))).join('\n')}\n`,
    );
    const out = join(work, 'interrupted.results.ndjson');
    const args = [
      'submit',
      'noop',
      '--bulk',
      input,
      '--url',
      app.url,
      '--chunk-size',
      '10',
      '--concurrency',
      '2',
    ];
    for (let i = 0; i < 5; i += 1) {
      const answer = await fetch(`${app.url}/v1/models/noop/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', prefer: 'wait=30' },
        body: JSON.stringify(noopBody(5000 + i)),
      });
      expect(((await answer.json()) as { status: string }).status).toBe('succeeded');
    }
    const before = await noopRequests();

    await queue('pause');
    let first: Exit;
    try {
      const run = startCli(args);
      // Until the CLI has the first two chunks accepted and the 5 cached results written.
      for (;;) {
        const taken = accepted(await noopRequests()) - accepted(before);
        if (taken === 20 && completeLines(out) === 5) break;
        expect(taken).toBeLessThanOrEqual(20);
        await sleep(50);
      }
      run.child.kill('SIGINT');
      first = await run.exited;
    } finally {
      await queue('resume');
    }

    expect(first.code, first.stderr).toBe(130);
    expect(summaryOf(first)).toMatchObject({
      total: count,
      succeeded: 5,
      failed: 0,
      skipped: 0,
      unfinished: 35,
      interrupted: true,
    });
    expect(first.stderr).toContain('run the same command again to resume');
    const written = readResults(out);
    expect(written.map((result) => result.line).sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual([1, 2, 3, 4, 5]);
    for (const result of written) expect(result).toMatchObject({ status: 'succeeded', cached: true });

    const second = await startCli(args).exited;
    expect(second.code, second.stderr).toBe(0);
    expect(summaryOf(second)).toMatchObject({
      total: count,
      succeeded: 35,
      failed: 0,
      skipped: 5,
      unfinished: 0,
      interrupted: false,
    });
    const results = readResults(out);
    expect(results).toHaveLength(count);
    const byLine = new Map(results.map((result) => [result.line, result]));
    for (let i = 0; i < count; i += 1) expectNoopResult(byLine.get(i + 1), 5000 + i);
    expect(new Set(results.map((result) => result.id)).size).toBe(count);
    // One request per input over both runs: the 15 accepted before SIGINT came back under their
    // chunks' keys (replayed, with the 5 finished ones beside them), not accepted again.
    const after = await noopRequests();
    expect(accepted(after) - accepted(before)).toBe(count);
    expect((after.replayed ?? 0) - (before.replayed ?? 0)).toBe(20);
  });

  it("sends a folder's images as the ocr pipeline's image input", async () => {
    const folder = join(work, 'scans');
    mkdirSync(folder);
    copyFileSync(join(REPO_ROOT, 'examples', 'ocr', 'hello.png'), join(folder, 'hello.png'));
    const exit = await startCli(['submit', 'ocr', '--bulk', folder, '--url', app.url]).exited;
    expect(exit.code, exit.stderr).toBe(0);
    expect(summaryOf(exit)).toMatchObject({ total: 1, succeeded: 1, failed: 0 });
    const [result] = readResults(join(work, 'scans.results.ndjson'));
    expect(result).toMatchObject({ file: 'hello.png', model: 'ocr', status: 'succeeded' });
    expect(result?.outputs?.text?.data).toEqual([
      'inferq reads text',
      'line by line, in order',
      'Total: 42.50 EUR',
    ]);
  });

  it('refuses images for a model without a bytes input, before sending anything', async () => {
    const folder = join(work, 'images-for-noop');
    mkdirSync(folder);
    copyFileSync(join(REPO_ROOT, 'examples', 'ocr', 'hello.png'), join(folder, 'hello.png'));
    const exit = await startCli(['submit', 'noop', '--bulk', folder, '--url', app.url]).exited;
    expect(exit).toEqual({
      code: 2,
      stdout: '',
      stderr: `inferq: ${folder} holds images, but model 'noop' does not take one: image files need a model or pipeline whose one input is uint8 bytes [-1]\n`,
    });
  });
  it('refuses an --out that is the input file itself, leaving it as it was', async () => {
    const input = join(work, 'same.ndjson');
    const text = `${JSON.stringify(noopBody(1))}\n${JSON.stringify(noopBody(2))}`;
    writeFileSync(input, text);
    const exit = await startCli(['submit', 'noop', '--bulk', input, '--out', input, '--url', app.url]).exited;
    expect(exit).toEqual({
      code: 2,
      stdout: '',
      stderr: `inferq: --out ${input} is the input file; name another results file\n`,
    });
    expect(readFileSync(input, 'utf8')).toBe(text);
  });
});
