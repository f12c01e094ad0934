// The conformance table: counts per class, unavailable cases grouped by reason, and the cost of
// serving the repository.
import { cpus } from 'node:os';
import type { CaseResult, Verdict } from './run.ts';
import type { Footprint } from './serve.ts';

const CLASS_TITLES: Readonly<Record<Verdict['class'], string>> = {
  correct: 'served and correct (equal to onnxruntime, which matches the expected output)',
  'onnxruntime-differs': 'served, equal to onnxruntime; onnxruntime differs from the expected output',
  random: 'served, random operator (dtype and shape equal to onnxruntime’s)',
  'run-refused': 'onnxruntime refuses the inputs; inferq ends the request `failed` with its message',
  unavailable: 'unavailable, with the reason inferq gives (onnxruntime-node cannot run it either)',
  wrong: '**wrong**',
};

const ORDER: readonly Verdict['class'][] = [
  'correct',
  'onnxruntime-differs',
  'random',
  'run-refused',
  'unavailable',
  'wrong',
];

export interface Measurements {
  startupMs: number;
  /** Right after `inferq ready`, and after every case was submitted. */
  atStart: Footprint;
  atEnd: Footprint;
  /** Versions in the repository. */
  versions: number;
  /** The machine's 1-minute load average when `inferq serve` was spawned (its cores are shared). */
  loadAverage: number;
}

export function countByClass(results: readonly CaseResult[]): Record<Verdict['class'], number> {
  const counts = Object.fromEntries(ORDER.map((name) => [name, 0])) as Record<Verdict['class'], number>;
  for (const { verdict } of results) counts[verdict.class]++;
  return counts;
}

/** A reason without the paths that make every case's differ (repository folder, model file). */
export function normalizeReason(reason: string): string {
  return reason
    .replace(/Load model from \S+ failed:/g, 'Load model failed:')
    .replace(/\S*\/(test_[A-Za-z0-9_.-]+)\/(1\/)?model\.onnx:?\s*/g, '')
    .replace(/\s+/g, ' ')
    .trim();
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function grouped(results: readonly CaseResult[]): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const { name, verdict } of results) {
    if (verdict.class !== 'unavailable') continue;
    const key = normalizeReason(verdict.reason);
    groups.set(key, [...(groups.get(key) ?? []), name]);
  }
  return new Map([...groups].sort((a, b) => b[1].length - a[1].length || a[0].localeCompare(b[0])));
}

/** The counts table alone (what the suite prints). */
export function countsTable(results: readonly CaseResult[]): string {
  const counts = countByClass(results);
  const lines = ['| class | cases |', '| --- | ---: |'];
  for (const cls of ORDER) lines.push(`| ${CLASS_TITLES[cls]} | ${counts[cls]} |`);
  lines.push(`| all cases | ${results.length} |`);
  return lines.join('\n');
}

function placed(footprint: Footprint): string {
  return `${footprint.placements.main ?? 0} / ${footprint.placements.thread ?? 0}`;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

/** Every section: counts, reasons, the per-case lists, and the measurements. */
export function fullReport(results: readonly CaseResult[], measured: Measurements): string {
  const out: string[] = [countsTable(results), ''];
  const groups = grouped(results);
  if (groups.size > 0) {
    out.push('### Unavailable, by reason', '', '| cases | reason | which |', '| ---: | --- | --- |');
    for (const [reason, names] of groups) {
      out.push(`| ${names.length} | ${escapeCell(reason)} | ${names.map((n) => `\`${n}\``).join(', ')} |`);
    }
    out.push('');
  }
  for (const [cls, title] of [
    [
      'onnxruntime-differs',
      'onnxruntime differs from the expected output (inferq serves what onnxruntime computes)',
    ],
    ['run-refused', 'onnxruntime refuses the inputs'],
    ['wrong', 'Wrong'],
  ] as const) {
    const rows = results.filter((r) => r.verdict.class === cls);
    if (rows.length === 0) continue;
    out.push(`### ${title}`, '', '| case | first difference |', '| --- | --- |');
    for (const { name, verdict } of rows) {
      const detail = 'detail' in verdict ? verdict.detail : '';
      out.push(`| \`${name}\` | ${escapeCell(normalizeReason(detail))} |`);
    }
    out.push('');
  }
  const random = results.filter((r) => r.verdict.class === 'random').map((r) => `\`${r.name}\``);
  if (random.length > 0) out.push(`Random operators: ${random.join(', ')}.`, '');
  const { atStart, atEnd } = measured;
  out.push(
    `### Serving ${measured.versions} model versions`,
    '',
    '| measure | after start-up | after every case |',
    '| --- | ---: | ---: |',
    `| start-up (\`inferq serve\` spawned → \`inferq ready\`) | ${(measured.startupMs / 1000).toFixed(1)} s | |`,
    `| machine load average (1 min) at spawn, ${cpus().length} cores | ${measured.loadAverage.toFixed(1)} | |`,
    `| worker RSS | ${mib(atStart.workerRssBytes)} | ${mib(atEnd.workerRssBytes)} |`,
    `| API RSS | ${mib(atStart.apiRssBytes)} | ${mib(atEnd.apiRssBytes)} |`,
    `| worker OS threads | ${atStart.workerThreads ?? '?'} | ${atEnd.workerThreads ?? '?'} |`,
    `| Redis clients (API + worker) | ${atStart.redisClients} | ${atEnd.redisClients} |`,
    `| ready versions on the main thread / in a thread of their own | ${placed(atStart)} | ${placed(atEnd)} |`,
    '',
  );
  return out.join('\n');
}
