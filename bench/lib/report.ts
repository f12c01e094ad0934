import type { LatencySummary } from './latency.ts';
import type {
  BenchResults,
  CurvePoint,
  InferqResults,
  OverheadResult,
  PipelineLoadResult,
  PipelineResult,
  PipelineStepTiming,
  ThroughputResult,
} from './results.ts';

export type Verdict = 'PASS' | 'MISS' | 'INFO' | 'NOT RUN' | 'ERROR';

/** One row of the targets table (P1–P11, docs/performance.md "Targets"). */
export interface TargetRow {
  id: string;
  target: string;
  measured: string;
  anchor: string;
  /** Measured figure ÷ anchor, with the bound it must meet; `—` where a count is compared. */
  ratio: string;
  verdict: Verdict;
}

/** The curve point closest to 70% of saturation, where P7 is read. */
export const P7_FRACTION = 0.7;
const P7_BOUND_FACTOR = 3;
/** P9: where p99 must be within the model's objective, as a fraction of saturation. */
export const P9_FRACTION = 0.9;
/** P9: the open loop sustains at least this share of the closed loop's saturation. */
const SUSTAINED_SHARE = 0.95;
/** P10: goodput at least this many times the naive baseline's. */
const GOODPUT_FACTOR = 3;
/** P1's bounds: p50 warm on each backend, p50 cold, p99 (ms). */
const P1_BOUNDS = { streams: 1.0, bullmq: 2.0, cold: 1.5, p99: 5 };

/**
 * Goodput: the highest offered rate of a latency curve at which every request succeeded and p99
 * stayed within `objectiveMs` (0 when no point did; undefined for no curve).
 */
export function goodput(curve: readonly CurvePoint[] | undefined, objectiveMs: number): number | undefined {
  if (curve === undefined || curve.length === 0) return undefined;
  let best = 0;
  for (const point of curve) {
    if (point.failed === 0 && point.ok > 0 && point.latency.p99Ms <= objectiveMs)
      best = Math.max(best, point.offeredPerSecond);
  }
  return best;
}

/**
 * The highest offered rate an open loop sustained: every request succeeded and the achieved rate kept
 * within 5% of the offered one (Poisson arrivals vary by about that over a point). 0 when none did.
 */
export function sustainedRate(curve: readonly CurvePoint[] | undefined): number | undefined {
  if (curve === undefined || curve.length === 0) return undefined;
  let best = 0;
  for (const point of curve) {
    if (point.failed === 0 && point.throughputPerSecond >= 0.95 * point.offeredPerSecond)
      best = Math.max(best, point.offeredPerSecond);
  }
  return best;
}

export function formatMs(ms: number): string {
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms).toLocaleString('en-US')} ms`;
}

export function formatRate(perSecond: number, unit = 'req/s'): string {
  return `${Math.round(perSecond).toLocaleString('en-US')} ${unit}`;
}

function ratio(value: number, bound: string): string {
  return `${value.toFixed(2)} (${bound})`;
}

function failed(results: BenchResults, scenario: string): boolean {
  return results.failures.some((failure) => failure.scenario === scenario);
}

function missing(results: BenchResults, scenario: string): Verdict {
  return failed(results, scenario) ? 'ERROR' : 'NOT RUN';
}

function blank(id: string, target: string, anchor: string, verdict: Verdict): TargetRow {
  return { id, target, measured: '—', anchor, ratio: '—', verdict };
}

function atMost(value: number, bound: number): Verdict {
  return value <= bound ? 'PASS' : 'MISS';
}

function atLeast(value: number, bound: number): Verdict {
  return value >= bound ? 'PASS' : 'MISS';
}

/** The point whose offered fraction is nearest `fraction` (undefined for an empty curve). */
export function pointNear(
  curve: readonly CurvePoint[] | undefined,
  fraction: number,
): CurvePoint | undefined {
  let best: CurvePoint | undefined;
  for (const point of curve ?? []) {
    if (best === undefined || Math.abs(point.fraction - fraction) < Math.abs(best.fraction - fraction))
      best = point;
  }
  return best;
}

function throughputRow(
  id: string,
  target: string,
  result: ThroughputResult | undefined,
  bound: number,
  results: BenchResults,
  scenario: string,
): TargetRow {
  const anchor = `≥ ${formatRate(bound)}`;
  if (result === undefined || failed(results, scenario))
    return blank(id, target, anchor, missing(results, scenario));
  return {
    id,
    target,
    measured: formatRate(result.throughputPerSecond),
    anchor,
    ratio: ratio(result.throughputPerSecond / bound, '≥ 1'),
    verdict: atLeast(result.throughputPerSecond, bound),
  };
}

/** Compares every figure with its target. Pure: the same results always give the same rows. */
export function evaluateTargets(results: BenchResults): TargetRow[] {
  const rows: TargetRow[] = [];
  const inferq = results.inferq ?? {};
  const cls = results.models['ppocr-cls'];

  const p1 = (
    label: string,
    overhead: OverheadResult | undefined,
    value: number | undefined,
    bound: number,
  ) => {
    const target = `pipeline overhead ${label} (noop, 1 client, \`Prefer: wait\`; end-to-end − inferMs)`;
    const anchor = `≤ ${bound} ms`;
    if (overhead === undefined || overhead.requests === 0 || value === undefined) {
      rows.push(blank('P1', target, anchor, missing(results, 'overhead')));
      return;
    }
    rows.push({
      id: 'P1',
      target,
      measured: formatMs(value),
      anchor,
      ratio: ratio(value / bound, '≤ 1'),
      verdict: atMost(value, bound),
    });
  };
  const overhead = inferq.overhead;
  const overheadBullmq = results.inferqBullmq?.overhead;
  p1('p50 warm at low load, streams', overhead, overhead?.overhead.p50Ms, P1_BOUNDS.streams);
  p1('p99 warm at low load, streams', overhead, overhead?.overhead.p99Ms, P1_BOUNDS.p99);
  p1('p50 cold (first 300 requests after a start), streams', overhead, overhead?.cold?.p50Ms, P1_BOUNDS.cold);
  p1('p50 warm at low load, bullmq', overheadBullmq, overheadBullmq?.overhead.p50Ms, P1_BOUNDS.bullmq);

  const saturation = inferq.saturation;
  const direct = results.direct;
  {
    const target = 'ppocr-cls saturation vs direct onnxruntime-node at its best batch size';
    if (saturation === undefined || direct === undefined) {
      const scenario = direct === undefined ? 'direct' : 'saturation';
      rows.push(blank('P2', target, '≥ 85% of direct', missing(results, scenario)));
    } else {
      const share = saturation.throughputPerSecond / direct.best.itemsPerSecond;
      rows.push({
        id: 'P2',
        target,
        measured: formatRate(saturation.throughputPerSecond, 'items/s'),
        anchor: `direct ${formatRate(direct.best.itemsPerSecond, 'items/s')} (batch ${direct.best.batchSize}); ≥ 85%`,
        ratio: ratio(share, '≥ 0.85'),
        verdict: atLeast(share, 0.85),
      });
    }
  }

  const naive = results.naive?.saturation;
  {
    const target = 'ppocr-cls saturation vs naive BullMQ (one job per inference)';
    if (saturation === undefined || naive === undefined) {
      const scenario = naive === undefined ? 'naive' : 'saturation';
      rows.push(blank('P3', target, '≥ 2.5× naive', missing(results, scenario)));
    } else {
      const times = saturation.throughputPerSecond / naive.throughputPerSecond;
      rows.push({
        id: 'P3',
        target,
        measured: formatRate(saturation.throughputPerSecond, 'items/s'),
        anchor: `naive ${formatRate(naive.throughputPerSecond, 'items/s')}; ≥ 2.5×`,
        ratio: ratio(times, '≥ 2.5'),
        verdict: atLeast(times, 2.5),
      });
    }
  }

  const cache = inferq.cache;
  {
    const target = `cache hit p50 end-to-end (${cache?.requests ?? 1000} repeated inputs)`;
    if (cache === undefined || cache.cachedAnswers === 0) {
      rows.push(blank('P4', target, '≤ 1 ms', missing(results, 'cache')));
      rows.push(
        blank(
          'P4',
          'a cache hit never touches the queue',
          '0 queue events, 0 model runs',
          missing(results, 'cache'),
        ),
      );
    } else {
      rows.push({
        id: 'P4',
        target,
        measured: formatMs(cache.latency.p50Ms),
        anchor: '≤ 1 ms',
        ratio: ratio(cache.latency.p50Ms / 1, '≤ 1'),
        verdict: atMost(cache.latency.p50Ms, 1),
      });
      const untouched =
        cache.queueEventsAdded === 0 && cache.modelRuns === 0 && cache.cachedAnswers === cache.requests;
      rows.push({
        id: 'P4',
        target: 'a cache hit never touches the queue',
        measured: `${cache.queueEventsAdded} queue events, ${cache.modelRuns} model runs, ${cache.cachedAnswers}/${cache.requests} answered from cache`,
        anchor: '0 queue events, 0 model runs',
        ratio: '—',
        verdict: untouched ? 'PASS' : 'MISS',
      });
    }
  }

  const coalescing = inferq.coalescing;
  {
    const target = `${coalescing?.requests ?? 'N'} identical requests in flight run the model once`;
    if (coalescing === undefined) {
      rows.push(blank('P5', target, '1 model run', missing(results, 'coalescing')));
    } else {
      const once =
        coalescing.modelRuns === 1 &&
        coalescing.succeeded === coalescing.requests &&
        coalescing.identicalOutputs;
      rows.push({
        id: 'P5',
        target,
        measured: `${coalescing.modelRuns} model run${coalescing.modelRuns === 1 ? '' : 's'}, ${coalescing.coalescedCounter} coalesced, ${coalescing.succeeded}/${coalescing.requests} succeeded${coalescing.identicalOutputs ? ', identical outputs' : ''}`,
        anchor: '1 model run',
        ratio: '—',
        verdict: once ? 'PASS' : 'MISS',
      });
    }
  }

  rows.push(
    throughputRow(
      'P6',
      `noop through single submits (${inferq.single?.connections ?? 64} connections), to a terminal state`,
      inferq.single,
      4_000,
      results,
      'single',
    ),
  );
  rows.push(
    throughputRow(
      'P6',
      'noop through `infer:bulk`, to a terminal state',
      inferq.bulk,
      10_000,
      results,
      'bulk',
    ),
  );

  {
    const point = pointNear(inferq.curve, P7_FRACTION);
    const target = 'ppocr-cls p99 latency at 70% of saturation (open loop, Poisson)';
    if (point === undefined || cls === undefined || point.meanInferMs === undefined) {
      rows.push(
        blank('P7', target, `≤ 3 × (maxBatchDelayMs + batch inference time)`, missing(results, 'latency')),
      );
    } else {
      const bound = P7_BOUND_FACTOR * (cls.maxBatchDelayMs + point.meanInferMs);
      rows.push({
        id: 'P7',
        target,
        measured: `${formatMs(point.latency.p99Ms)} at ${formatRate(point.throughputPerSecond)}`,
        anchor: `≤ 3 × (${cls.maxBatchDelayMs} ms + ${formatMs(point.meanInferMs)}) = ${formatMs(bound)}`,
        ratio: ratio(point.latency.p99Ms / bound, '≤ 1'),
        verdict: atMost(point.latency.p99Ms, bound),
      });
    }
  }

  {
    const workers = inferq.workers ?? [];
    const one = workers.find((point) => point.workers === 1);
    const target = 'ppocr-cls saturation with more worker processes (needs more cores than the bench has)';
    if (one === undefined || workers.length < 2) {
      rows.push(blank('P8', target, '≥ 0.8 × N for N ≤ cores', missing(results, 'workers')));
    } else {
      const others = workers.filter((point) => point.workers !== 1);
      rows.push({
        id: 'P8',
        target,
        measured: workers
          .map((point) => `${point.workers}w ${formatRate(point.saturation.throughputPerSecond, 'items/s')}`)
          .join(', '),
        anchor: `≥ 0.8 × N for N ≤ cores (${results.machine.cpus} here)`,
        ratio: others
          .map(
            (point) =>
              `${point.workers}w ${(point.saturation.throughputPerSecond / one.saturation.throughputPerSecond).toFixed(2)}×`,
          )
          .join(', '),
        verdict: 'INFO',
      });
    }
  }

  const objective = cls?.latencyObjectiveMs;
  {
    const target = 'ppocr-cls open-loop sustainable rate vs closed-loop saturation';
    const sustained = sustainedRate(inferq.curve);
    if (sustained === undefined || saturation === undefined) {
      rows.push(blank('P9', target, `≥ ${SUSTAINED_SHARE * 100}%`, missing(results, 'latency')));
    } else {
      const share = sustained / saturation.throughputPerSecond;
      rows.push({
        id: 'P9',
        target,
        measured: `${formatRate(sustained)} sustained`,
        anchor: `closed loop ${formatRate(saturation.throughputPerSecond)}; ≥ ${SUSTAINED_SHARE * 100}%`,
        ratio: ratio(share, `≥ ${SUSTAINED_SHARE}`),
        verdict: atLeast(share, SUSTAINED_SHARE),
      });
    }
  }
  {
    const point = pointNear(inferq.curve, P9_FRACTION);
    const target = `ppocr-cls p99 latency at ${P9_FRACTION * 100}% of saturation within the model's objective`;
    if (point === undefined || objective === undefined) {
      const verdict =
        objective === undefined && point !== undefined ? 'NOT RUN' : missing(results, 'latency');
      rows.push(blank('P9', target, '≤ latencyObjectiveMs', verdict));
    } else {
      const refused = point.failed > 0 ? `, ${point.failed} of ${point.sent} refused or failed` : '';
      rows.push({
        id: 'P9',
        target,
        measured: `${formatMs(point.latency.p99Ms)} at ${formatRate(point.throughputPerSecond)}${refused}`,
        anchor: `≤ ${objective} ms`,
        ratio: ratio(point.latency.p99Ms / objective, '≤ 1'),
        verdict: point.failed === 0 ? atMost(point.latency.p99Ms, objective) : 'MISS',
      });
    }
  }
  for (const [backend, measured] of [
    ['streams', inferq],
    ['bullmq', results.inferqBullmq ?? {}],
  ] as const) {
    const target = `ppocr-cls goodput (highest offered rate with every request answered and p99 ≤ the objective), ${backend}`;
    const own = objective === undefined ? undefined : goodput(measured.curve, objective);
    const naive = objective === undefined ? undefined : goodput(results.naive?.curve, objective);
    const anchor = `≥ ${GOODPUT_FACTOR} × naive`;
    if (own === undefined || naive === undefined) {
      rows.push(blank('P10', target, anchor, missing(results, 'latency')));
      continue;
    }
    rows.push({
      id: 'P10',
      target,
      measured: formatRate(own),
      anchor: `naive ${formatRate(naive)}; ${anchor}`,
      ratio: naive > 0 ? ratio(own / naive, `≥ ${GOODPUT_FACTOR}`) : '—',
      verdict: naive > 0 ? atLeast(own / naive, GOODPUT_FACTOR) : own > 0 ? 'PASS' : 'MISS',
    });
  }
  {
    const target = "the API's CPU time per successful ppocr-cls request at saturation (closed loop)";
    const perRequest = saturation?.apiCpuMsPerRequest;
    if (perRequest === undefined) {
      rows.push(blank('P11', target, 'stated, and falling', missing(results, 'saturation')));
    } else {
      rows.push({
        id: 'P11',
        target,
        measured: `${Math.round(perRequest * 1000).toLocaleString('en-US')} µs`,
        anchor: 'stated, and falling',
        ratio: '—',
        verdict: 'INFO',
      });
    }
  }
  return rows;
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]): string =>
    `| ${cells.map((cell) => cell.replaceAll('|', '\\|')).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** A titled table, when it has rows. */
function pushSection(out: string[], title: string, header: string[], rows: string[][]): void {
  if (rows.length === 0) return;
  out.push('', title, '', table(header, rows));
}

function errorsText(errors: Record<string, number>): string {
  const entries = Object.entries(errors);
  return entries.length === 0 ? '0' : entries.map(([reason, count]) => `${count} ${reason}`).join('; ');
}

/** Per load point: the client's latency beside the workers' mean phases and share within the objective. */
function serverRows(name: string, curve: readonly CurvePoint[]): string[][] {
  return curve.flatMap((point) => {
    const s = point.server;
    if (s === undefined) return [];
    return [
      [
        name,
        `${Math.round(point.fraction * 100)}%`,
        formatMs(point.latency.p50Ms),
        formatMs(point.latency.p99Ms),
        formatMs(s.queueMs),
        formatMs(s.batchWaitMs),
        formatMs(s.inferenceMs),
        formatMs(s.totalMs),
        s.metObjective === undefined ? '—' : `${(s.metObjective * 100).toFixed(1)}%`,
      ],
    ];
  });
}

function curveRows(name: string, curve: readonly CurvePoint[]): string[][] {
  return curve.map((point) => [
    name,
    `${Math.round(point.fraction * 100)}%`,
    formatRate(point.offeredPerSecond),
    formatRate(point.throughputPerSecond),
    formatMs(point.latency.p50Ms),
    formatMs(point.latency.p99Ms),
    point.meanBatchSize === undefined ? '—' : point.meanBatchSize.toFixed(1),
    errorsText(point.errors),
  ]);
}

/** The report: targets first (the table to paste into docs/performance.md), then every figure behind them. */
/** The all-in-one scenarios on each queue backend, measured in the same run, side by side. */
export function backendsSection(results: BenchResults): string[] {
  const streams = results.inferq ?? {};
  const bullmq = results.inferqBullmq ?? {};
  const naive = results.naive?.saturation?.throughputPerSecond;
  const cell = (value: string | undefined): string => value ?? '—';
  const overhead = (r: InferqResults): string | undefined =>
    r.overhead && `${formatMs(r.overhead.overhead.p50Ms)} / ${formatMs(r.overhead.overhead.p99Ms)}`;
  const saturation = (r: InferqResults): string | undefined =>
    r.saturation &&
    `${formatRate(r.saturation.throughputPerSecond, 'items/s')}${naive ? ` (${(r.saturation.throughputPerSecond / naive).toFixed(2)}× naive)` : ''}, mean batch ${r.saturation.meanBatchSize?.toFixed(1) ?? '—'}`;
  const p7 = (r: InferqResults): string | undefined => {
    const point = pointNear(r.curve, P7_FRACTION);
    return point && `${formatMs(point.latency.p99Ms)} at ${formatRate(point.throughputPerSecond, 'items/s')}`;
  };
  const rate = (t: ThroughputResult | undefined): string | undefined =>
    t && formatRate(t.throughputPerSecond);
  const cache = (r: InferqResults): string | undefined => r.cache && formatMs(r.cache.latency.p50Ms);
  const objective = results.models['ppocr-cls']?.latencyObjectiveMs;
  const good = (r: InferqResults): string | undefined => {
    const own = objective === undefined ? undefined : goodput(r.curve, objective);
    const base = objective === undefined ? undefined : goodput(results.naive?.curve, objective);
    if (own === undefined) return undefined;
    return `${formatRate(own)}${base ? ` (${(own / base).toFixed(2)}× naive's ${formatRate(base)})` : ''}`;
  };
  const sustained = (r: InferqResults): string | undefined => {
    const rate = sustainedRate(r.curve);
    const closed = r.saturation?.throughputPerSecond;
    if (rate === undefined) return undefined;
    return `${formatRate(rate)}${closed ? ` (${Math.round((rate / closed) * 100)}% of closed loop)` : ''}`;
  };
  const p9 = (r: InferqResults): string | undefined => {
    const point = pointNear(r.curve, P9_FRACTION);
    return point && `${formatMs(point.latency.p99Ms)} at ${formatRate(point.throughputPerSecond, 'items/s')}`;
  };
  const cpu = (r: InferqResults): string | undefined => {
    const ms = r.saturation?.apiCpuMsPerRequest;
    return ms === undefined ? undefined : `${Math.round(ms * 1000).toLocaleString('en-US')} µs`;
  };
  const rows: [string, (r: InferqResults) => string | undefined][] = [
    ['P1 no-op overhead p50 / p99', overhead],
    ['P3 ppocr-cls saturation (closed loop)', saturation],
    [`P7 ppocr-cls p99 at ${Math.round(P7_FRACTION * 100)}% of its saturation`, p7],
    [`P9 ppocr-cls p99 at ${Math.round(P9_FRACTION * 100)}% of its saturation`, p9],
    ['P9 open-loop sustainable rate', sustained],
    [`P10 goodput at the ${objective ?? '—'} ms objective`, good],
    ['P11 API CPU per request at saturation', cpu],
    ['P6 single submits', (r) => rate(r.single)],
    ['P6 infer:bulk', (r) => rate(r.bulk)],
    ['P4 cache hit p50', cache],
  ];
  return [
    '### Queue backends side by side (`QUEUE_BACKEND`)',
    '',
    table(
      ['measure', 'streams (default)', 'bullmq'],
      rows.map(([label, read]) => [label, cell(read(streams)), cell(read(bullmq))]),
    ),
  ];
}

/** A count that is a mean: whole when it is whole. */
function formatMean(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

/**
 * The `ocr` scenario: images/s, latency and each model's mean batch at low load and at saturation,
 * then each step's mean time per image (docs/performance.md, "The ocr pipeline").
 */
export function pipelineSection(ocr: PipelineResult): string[] {
  const loads = [
    ['low load', ocr.lowLoad],
    ['saturation', ocr.saturation],
  ].filter((entry): entry is [string, PipelineLoadResult] => entry[1] !== undefined);
  if (loads.length === 0) return [];
  const models = loads[0]?.[1].batches ?? [];
  const largest = (load: PipelineLoadResult, steps: readonly string[]): number | undefined => {
    const sizes = load.steps.filter((s) => steps.includes(s.step)).map((s) => s.largestBatch ?? 0);
    const most = Math.max(0, ...sizes);
    return most > 0 ? most : undefined;
  };
  const summary = table(
    [
      'load',
      'clients',
      'images',
      'images/s',
      'p50',
      'p99',
      ...models.map((m) => `${m.steps.join(', ')} (${m.model}): mean batch (largest)`),
      'errors',
    ],
    loads.map(([label, load]) => [
      label,
      String(load.concurrency),
      String(load.ok),
      `${load.throughputPerSecond.toFixed(2)} images/s`,
      formatMs(load.latency.p50Ms),
      formatMs(load.latency.p99Ms),
      ...models.map((m) => {
        const batches = load.batches.find((b) => b.model === m.model);
        const mean = batches?.meanBatchSize;
        const most = largest(load, m.steps);
        return mean === undefined ? '—' : `${mean.toFixed(1)}${most === undefined ? '' : ` (${most})`}`;
      }),
      errorsText(load.errors),
    ]),
  );

  const order: string[] = [];
  for (const [, load] of loads) for (const s of load.steps) if (!order.includes(s.step)) order.push(s.step);
  const stepOf = (load: PipelineLoadResult, step: string): PipelineStepTiming | undefined =>
    load.steps.find((s) => s.step === step);
  const stepCell = (timing: PipelineStepTiming | undefined): string => {
    if (timing === undefined) return '—';
    const parts =
      timing.meanQueueMs === undefined || timing.meanInferMs === undefined
        ? ''
        : ` (queued ${formatMs(timing.meanQueueMs)}, inference ${formatMs(timing.meanInferMs)})`;
    return `${formatMs(timing.meanMs)}${parts}`;
  };
  const rows = order.map((step) => {
    const timings = loads.map(([, load]) => stepOf(load, step));
    const first = timings.find((t) => t !== undefined);
    const items = first?.meanItems;
    return [
      step,
      `${first?.kind ?? '—'}${items === undefined ? '' : `, per item (${formatMean(items)} per image)`}`,
      ...timings.map(stepCell),
    ];
  });
  const meanOr = (value: number | undefined): string => (value === undefined ? '—' : formatMs(value));
  rows.push(
    [
      'the request queued, until a worker took it (record `queueMs`)',
      '—',
      ...loads.map(([, load]) => meanOr(load.meanQueueMs)),
    ],
    ['all steps (record `inferMs`)', '—', ...loads.map(([, load]) => meanOr(load.meanInferMs))],
    ['end to end (client)', '—', ...loads.map(([, load]) => formatMs(load.latency.meanMs))],
  );
  const steps = table(['step', 'kind', ...loads.map(([label]) => label)], rows);

  return [
    `### ${ocr.pipeline} pipeline (streams queue; \`${ocr.image}\`, ${ocr.imageBytes.toLocaleString('en-US')} bytes, \`"cache": false\`)`,
    '',
    summary,
    '',
    `### ${ocr.pipeline} pipeline: where the time goes (mean per image; model steps: their model requests' mean time queued and in inference)`,
    '',
    steps,
  ];
}

export function renderMarkdown(results: BenchResults): string {
  const m = results.machine;
  const out: string[] = [];
  out.push(
    `Machine: ${m.cpus} cores (\`nproc\` ${m.cpus}), ${m.cpuModel}, ${m.memoryGiB} GiB; Node ${m.node}; ` +
      `onnxruntime-node ${m.onnxruntimeNode}; redis-server ${m.redisServer}. ` +
      `Profile \`${results.profile}\`, run ${results.startedAt}, ${Math.round(results.wallSeconds)} s. ` +
      'Load generator, API, worker(s) and Redis share these cores.' +
      (results.naive?.referenceLoop === undefined
        ? ''
        : ` This machine's bare BullMQ add → waitUntilFinished loop (one job at a time, empty job) took ` +
          `p50 ${formatMs(results.naive.referenceLoop.p50Ms)} in this run; the design's reference machine: 0.8 ms.`),
  );
  out.push('');
  out.push(
    table(
      ['#', 'target', 'measured', 'anchor / target', 'ratio', 'result'],
      evaluateTargets(results).map((row) => [
        row.id,
        row.target,
        row.measured,
        row.anchor,
        row.ratio,
        `**${row.verdict}**`,
      ]),
    ),
  );

  if (results.inferqBullmq !== undefined) out.push('', ...backendsSection(results));

  if (results.failures.length > 0) {
    out.push('', '**Failed scenarios:**', '');
    for (const failure of results.failures)
      out.push(`- ${failure.scenario}: ${failure.message.split('\n')[0]}`);
  }

  const direct = results.direct;
  if (direct !== undefined) {
    out.push('', `### Direct onnxruntime-node (${direct.model}, in process)`, '');
    out.push(
      table(
        ['batch size', 'runs', 'ms per batch (p50)', 'ms per batch (p99)', 'items/s'],
        direct.perBatchSize.map((row) => [
          String(row.batchSize),
          String(row.runs),
          formatMs(row.batchLatency.p50Ms),
          formatMs(row.batchLatency.p99Ms),
          formatRate(row.itemsPerSecond, 'items/s') +
            (row.batchSize === direct.best.batchSize ? ' (best)' : ''),
        ]),
      ),
    );
  }

  const saturationRows: string[][] = [];
  const naive = results.naive?.saturation;
  if (naive !== undefined) {
    saturationRows.push([
      `naive BullMQ (worker concurrency ${results.naive?.workerConcurrency})`,
      String(naive.concurrency),
      formatRate(naive.throughputPerSecond, 'items/s'),
      formatMs(naive.latency.p50Ms),
      formatMs(naive.latency.p99Ms),
      '1',
      errorsText(naive.errors),
    ]);
  }
  const inferq = results.inferq ?? {};
  const saturationRow = (label: string, s: NonNullable<typeof inferq.saturation>): string[] => [
    label,
    String(s.concurrency),
    formatRate(s.throughputPerSecond, 'items/s'),
    formatMs(s.latency.p50Ms),
    formatMs(s.latency.p99Ms),
    s.meanBatchSize === undefined ? '—' : s.meanBatchSize.toFixed(1),
    errorsText(s.errors),
  ];
  if (inferq.saturation !== undefined)
    saturationRows.push(saturationRow('inferq serve (1 worker)', inferq.saturation));
  for (const point of inferq.workers ?? []) {
    saturationRows.push(saturationRow(`inferq API + ${point.workers} worker process(es)`, point.saturation));
  }
  if (saturationRows.length > 0) {
    out.push('', '### ppocr-cls saturation (closed loop)', '');
    out.push(
      table(['contender', 'clients', 'throughput', 'p50', 'p99', 'mean batch', 'errors'], saturationRows),
    );
  }

  const curves = [
    ...curveRows('inferq', inferq.curve ?? []),
    ...curveRows('inferq (bullmq)', results.inferqBullmq?.curve ?? []),
    ...curveRows('naive', results.naive?.curve ?? []),
  ];
  pushSection(
    out,
    '### ppocr-cls latency against offered load (open loop, Poisson arrivals)',
    ['contender', 'offered (of own saturation)', 'offered', 'achieved', 'p50', 'p99', 'mean batch', 'errors'],
    curves,
  );

  const accounts = [
    ...serverRows('inferq', inferq.curve ?? []),
    ...serverRows('inferq (bullmq)', results.inferqBullmq?.curve ?? []),
  ];
  pushSection(
    out,
    "### Where the time went: the workers' account of each load point",
    [
      'contender',
      'offered',
      'client p50',
      'client p99',
      'accepted → batch start (mean)',
      'of it in the worker (mean)',
      'inference (mean)',
      'accepted → end (mean)',
      'within the objective',
    ],
    accounts,
  );

  if (inferq.overhead !== undefined || inferq.cache !== undefined) {
    out.push('', '### Low-load latency', '');
    const rows: string[][] = [];
    const row = (series: string, latency: LatencySummary): void => {
      rows.push([series, formatMs(latency.p50Ms), formatMs(latency.p99Ms), formatMs(latency.maxMs)]);
    };
    const reference = results.naive?.referenceLoop;
    if (reference !== undefined) {
      row('reference: bare BullMQ add → waitUntilFinished (empty job, 1 client)', reference);
    }
    const o = inferq.overhead;
    if (o !== undefined) {
      row(`overhead (${o.model}, ${o.requests} requests)`, o.overhead);
      row(`end-to-end (${o.model})`, o.endToEnd);
      row(`inferMs reported (${o.model})`, o.inference);
    }
    const viaNode = inferq.overheadNodeHttp;
    if (viaNode !== undefined) {
      row(
        `overhead through node:http's client (${viaNode.model}, ${viaNode.requests} requests)`,
        viaNode.overhead,
      );
    }
    const floor = inferq.noopCache;
    if (floor !== undefined) {
      row(
        `cache hit end-to-end (${floor.model}, ${floor.cachedAnswers} hits): HTTP and one script, no queue`,
        floor.latency,
      );
    }
    const c = inferq.cache;
    if (c !== undefined) row(`cache hit end-to-end (${c.model}, ${c.cachedAnswers} hits)`, c.latency);
    out.push(table(['series', 'p50', 'p99', 'max'], rows));
  }

  const throughput = [inferq.single, inferq.bulk].filter((t): t is ThroughputResult => t !== undefined);
  if (throughput.length > 0) {
    out.push('', '### noop queue-path throughput', '');
    out.push(
      table(
        ['method', 'connections', 'accepted', 'accepted/s', 'finished', 'finished/s', 'errors'],
        throughput.map((t) => [
          `\`${t.method}\`${t.bulkSize === undefined ? '' : ` (${t.bulkSize} per body)`}`,
          String(t.connections),
          t.accepted.toLocaleString('en-US'),
          formatRate(t.acceptedPerSecond),
          t.terminal.toLocaleString('en-US'),
          formatRate(t.throughputPerSecond),
          errorsText(t.errors),
        ]),
      ),
    );
  }

  if (inferq.ocr !== undefined) {
    const section = pipelineSection(inferq.ocr);
    if (section.length > 0) out.push('', ...section);
  }
  return `${out.join('\n')}\n`;
}
