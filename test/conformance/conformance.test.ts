// Issue 10 item 6: every case of ONNX's node tests (Debian's libonnx-testdata) in one repository,
// served by `inferq serve` and submitted over HTTP in MessagePack and in JSON; the table is printed,
// and with CONFORMANCE_DOC=<file> (npm run conformance) written into docs/conformance.md.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { AllInOne } from '../helpers/processes.ts';
import { countByClass, countsTable, fullReport, type Measurements } from './lib/report.ts';
import { buildRepository } from './lib/repository.ts';
import { type CaseResult, judgeAll, type Prepared, prepareCases } from './lib/run.ts';
import { type Footprint, measureFootprint, serveRepository } from './lib/serve.ts';

const BEGIN = '<!-- conformance:begin -->';
const END = '<!-- conformance:end -->';

let prepared: Prepared[];
let repository: string;
let app: AllInOne | undefined;
let startupMs = 0;
let loadAverage = 0;
let atStart: Footprint;

beforeAll(async () => {
  prepared = await prepareCases();
  repository = buildRepository(
    mkdtempSync(join(tmpdir(), 'inferq-conformance-')),
    prepared.map((item) => item.testCase),
  );
  const served = await serveRepository(repository);
  app = served.app;
  startupMs = served.startupMs;
  loadAverage = served.loadAverage;
  atStart = await measureFootprint(app);
});

afterAll(async () => {
  await app?.stop();
  if (repository !== undefined) rmSync(repository, { recursive: true, force: true });
});

test('every case onnxruntime-node runs directly is served correctly, in MessagePack and in JSON', async () => {
  if (app === undefined) throw new Error('inferq did not start');
  const results: CaseResult[] = await judgeAll(app.url, prepared);
  const measured: Measurements = {
    startupMs,
    loadAverage,
    atStart,
    atEnd: await measureFootprint(app),
    versions: prepared.length,
  };
  const counts = countByClass(results);
  console.log(`conformance against ONNX's node tests:\n${countsTable(results)}`);
  const wrong = results.filter((r) => r.verdict.class === 'wrong');
  for (const { name, verdict } of wrong)
    console.log(`wrong: ${name}: ${'detail' in verdict ? verdict.detail : ''}`);

  const { env } = process;
  const doc = env.CONFORMANCE_DOC;
  if (doc !== undefined && doc !== '') {
    const text = readFileSync(doc, 'utf8');
    const begin = text.indexOf(BEGIN);
    const end = text.indexOf(END);
    if (begin < 0 || end < begin) throw new Error(`${doc} has no ${BEGIN} … ${END} section`);
    writeFileSync(
      doc,
      `${text.slice(0, begin + BEGIN.length)}\n${fullReport(results, measured)}\n${text.slice(end)}`,
    );
  }

  expect(wrong.map(({ name, verdict }) => `${name}: ${'detail' in verdict ? verdict.detail : ''}`)).toEqual(
    [],
  );
  expect(counts.correct).toBeGreaterThan(0);
  expect(results).toHaveLength(prepared.length);
});
