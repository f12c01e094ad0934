import { describe, expect, it } from 'vitest';
import type { LatencySummary } from './latency.ts';
import type { LoadResult } from './load.ts';
import {
  backendsSection,
  evaluateTargets,
  formatMs,
  formatRate,
  goodput,
  pipelineSection,
  pointNear,
  renderMarkdown,
  sustainedRate,
} from './report.ts';
import type { BenchResults, CurvePoint, PipelineLoadResult, PipelineResult } from './results.ts';

function latency(p50Ms: number, p99Ms: number): LatencySummary {
  return {
    count: 100,
    meanMs: p50Ms,
    minMs: p50Ms / 2,
    p50Ms,
    p90Ms: p99Ms,
    p99Ms,
    p999Ms: p99Ms,
    maxMs: p99Ms,
  };
}

function load(throughputPerSecond: number, p50Ms: number, p99Ms: number, meanInferMs?: number): LoadResult {
  return {
    sent: 100,
    ok: 100,
    failed: 0,
    errors: {},
    elapsedMs: 1000,
    throughputPerSecond,
    latency: latency(p50Ms, p99Ms),
    meanInferMs,
  };
}

function point(fraction: number, p99Ms: number, meanInferMs: number): CurvePoint {
  return { ...load(fraction * 1000, 5, p99Ms, meanInferMs), fraction, offeredPerSecond: fraction * 1000 };
}

function baseResults(): BenchResults {
  return {
    version: 1,
    profile: 'quick',
    scenarios: [],
    seed: 1,
    startedAt: '2026-01-01T00:00:00.000Z',
    wallSeconds: 90,
    machine: {
      cpus: 2,
      cpuModel: 'Test CPU',
      memoryGiB: 24,
      node: 'v20.0.0',
      platform: 'linux x64',
      onnxruntimeNode: '1.30.0',
      redisServer: '7.0.15',
    },
    models: {
      'ppocr-cls': { maxBatchSize: 32, maxBatchDelayMs: 2 },
      noop: { maxBatchSize: 64, maxBatchDelayMs: 1 },
    },
    failures: [],
  };
}

function fullResults(): BenchResults {
  return {
    ...baseResults(),
    direct: {
      model: 'ppocr-cls',
      perBatchSize: [
        { batchSize: 1, runs: 10, batchLatency: latency(2, 3), itemsPerSecond: 500 },
        { batchSize: 8, runs: 10, batchLatency: latency(5, 6), itemsPerSecond: 1600 },
      ],
      best: { batchSize: 8, itemsPerSecond: 1600 },
    },
    naive: {
      workerConcurrency: 4,
      saturation: { ...load(400, 10, 20), concurrency: 64, meanBatchSize: undefined },
    },
    inferq: {
      overhead: {
        model: 'noop',
        requests: 300,
        overhead: latency(1.2, 6),
        cold: latency(1.4, 9),
        endToEnd: latency(1.5, 7),
        inference: latency(0.3, 1),
        errors: {},
      },
      cache: {
        model: 'ppocr-cls',
        requests: 1000,
        latency: latency(0.8, 2),
        cachedAnswers: 1000,
        queueEventsAdded: 0,
        modelRuns: 0,
        cachedCounter: 1000,
      },
      coalescing: {
        model: 'ppocr-cls',
        requests: 32,
        modelRuns: 1,
        inferences: 1,
        coalescedCounter: 31,
        succeeded: 32,
        identicalOutputs: true,
      },
      single: {
        model: 'noop',
        method: 'POST /v1/models/noop/infer',
        connections: 64,
        submitted: 1000,
        accepted: 1000,
        terminal: 1000,
        succeeded: 1000,
        acceptedPerSecond: 5000,
        elapsedMs: 250,
        throughputPerSecond: 4000,
        errors: {},
      },
      saturation: { ...load(1200, 30, 50), concurrency: 64, meanBatchSize: 20 },
      curve: [point(0.1, 8, 2), point(0.7, 20, 5), point(1, 90, 9)],
    },
  };
}

describe('evaluateTargets', () => {
  const rows = evaluateTargets(fullResults());
  const row = (id: string, index = 0) => rows.filter((r) => r.id === id)[index];

  it('compares each figure with its bound', () => {
    expect(row('P1', 0)).toMatchObject({
      measured: '1.20 ms',
      anchor: '≤ 1 ms',
      ratio: '1.20 (≤ 1)',
      verdict: 'MISS',
    });
    expect(row('P1', 1)).toMatchObject({ measured: '6.00 ms', ratio: '1.20 (≤ 1)', verdict: 'MISS' });
    // Cold: the first 300 requests after a start, against 1.5 ms.
    expect(row('P1', 2)).toMatchObject({ measured: '1.40 ms', anchor: '≤ 1.5 ms', verdict: 'PASS' });
    // The BullMQ backend was not measured in this run.
    expect(row('P1', 3)).toMatchObject({ anchor: '≤ 2 ms', verdict: 'NOT RUN' });
    // 1200 / 1600 = 0.75 of direct's best.
    expect(row('P2')).toMatchObject({ ratio: '0.75 (≥ 0.85)', verdict: 'MISS' });
    expect(row('P2')?.anchor).toContain('batch 8');
    // 1200 / 400 = 3× the naive baseline.
    expect(row('P3')).toMatchObject({ ratio: '3.00 (≥ 2.5)', verdict: 'PASS' });
    expect(row('P4', 0)).toMatchObject({ measured: '0.80 ms', verdict: 'PASS' });
    expect(row('P4', 1)?.verdict).toBe('PASS');
    expect(row('P5')?.verdict).toBe('PASS');
    expect(row('P6', 0)).toMatchObject({ measured: '4,000 req/s', ratio: '1.00 (≥ 1)', verdict: 'PASS' });
  });

  it('reads P7 at the 70% point against 3 × (maxBatchDelayMs + mean batch inference time)', () => {
    // 3 × (2 ms + 5 ms) = 21 ms; the 70% point's p99 is 20 ms.
    expect(row('P7')).toMatchObject({ anchor: '≤ 3 × (2 ms + 5.00 ms) = 21.0 ms', verdict: 'PASS' });
  });

  it('says NOT RUN for what was not measured and ERROR for what failed', () => {
    expect(row('P6', 1)?.verdict).toBe('NOT RUN');
    expect(row('P8')?.verdict).toBe('NOT RUN');
    const failedBulk = { ...fullResults(), failures: [{ scenario: 'bulk', message: 'HTTP 404' }] };
    expect(evaluateTargets(failedBulk).filter((r) => r.id === 'P6')[1]?.verdict).toBe('ERROR');
    const empty = evaluateTargets(baseResults());
    expect(empty.map((r) => r.verdict)).toEqual(Array(empty.length).fill('NOT RUN'));
    expect(empty.map((r) => r.id)).toEqual([
      'P1',
      'P1',
      'P1',
      'P1',
      'P2',
      'P3',
      'P4',
      'P4',
      'P5',
      'P6',
      'P6',
      'P7',
      'P8',
      'P9',
      'P9',
      'P10',
      'P10',
      'P11',
    ]);
  });

  it('reads P9, P10 and P11 from the curves, the objective and the API CPU at saturation', () => {
    const results = fullResults();
    results.models['ppocr-cls'] = { maxBatchSize: 32, maxBatchDelayMs: 2, latencyObjectiveMs: 50 };
    const withFailures = (p: CurvePoint, failed: number): CurvePoint => ({
      ...p,
      failed,
      sent: p.ok + failed,
    });
    // inferq: p99 within 50 ms up to 90% of 1,000 req/s; at 100% some were refused.
    results.inferq!.curve = [point(0.5, 10, 2), point(0.9, 40, 5), withFailures(point(1, 45, 9), 7)];
    results.inferq!.saturation = {
      ...load(1000, 30, 50),
      concurrency: 64,
      meanBatchSize: 20,
      apiCpuMsPerRequest: 0.85,
    };
    // naive: within 50 ms only at 200 req/s.
    results.naive!.curve = [point(0.2, 30, 20), point(0.4, 400, 20)];
    results.inferqBullmq = { curve: [point(0.5, 20, 2), point(0.7, 80, 5)] };
    const evaluated = evaluateTargets(results);
    const rowsOf = (id: string) => evaluated.filter((r) => r.id === id);
    // Sustained to 900 req/s (the 100% point failed 7): 0.90 of the closed loop's 1,000.
    expect(rowsOf('P9')[0]).toMatchObject({
      measured: '900 req/s sustained',
      ratio: '0.90 (≥ 0.95)',
      verdict: 'MISS',
    });
    expect(rowsOf('P9')[1]).toMatchObject({
      measured: `40.0 ms at ${formatRate(900)}`,
      anchor: '≤ 50 ms',
      verdict: 'PASS',
    });
    expect(rowsOf('P10')[0]).toMatchObject({
      measured: formatRate(900),
      anchor: `naive ${formatRate(200)}; ≥ 3 × naive`,
      ratio: '4.50 (≥ 3)',
      verdict: 'PASS',
    });
    expect(rowsOf('P10')[1]).toMatchObject({
      measured: formatRate(500),
      ratio: '2.50 (≥ 3)',
      verdict: 'MISS',
    });
    expect(rowsOf('P11')[0]).toMatchObject({ measured: '850 µs', verdict: 'INFO' });
  });

  it('misses P4 when a hit touched the queue and P5 when the model ran twice', () => {
    const results = fullResults();
    if (results.inferq?.cache) results.inferq.cache.queueEventsAdded = 3;
    if (results.inferq?.coalescing) results.inferq.coalescing.modelRuns = 2;
    const evaluated = evaluateTargets(results);
    expect(evaluated.filter((r) => r.id === 'P4')[1]?.verdict).toBe('MISS');
    expect(evaluated.find((r) => r.id === 'P5')?.verdict).toBe('MISS');
  });
});

describe('renderMarkdown', () => {
  it('starts with the machine and the targets table, one row per target', () => {
    const markdown = renderMarkdown(fullResults());
    const lines = markdown.split('\n');
    expect(lines[0]).toContain('2 cores');
    expect(lines[2]).toBe('| # | target | measured | anchor / target | ratio | result |');
    expect(lines.filter((line) => /^\| P\d+ /.test(line))).toHaveLength(18);
    expect(markdown).toContain('### ppocr-cls latency against offered load');
    expect(markdown).toContain('| inferq | 70% | 700 req/s | 700 req/s | 5.00 ms | 20.0 ms |');
  });

  it('puts the no-op cache hits, the floor under P1, in the low-load table and not among the targets', () => {
    const results = fullResults();
    if (results.inferq !== undefined) {
      results.inferq.noopCache = {
        model: 'noop',
        requests: 1000,
        latency: latency(0.9, 3),
        cachedAnswers: 1000,
        queueEventsAdded: 0,
        modelRuns: 0,
        cachedCounter: 1000,
      };
    }
    const markdown = renderMarkdown(results);
    expect(markdown).toContain(
      '| cache hit end-to-end (noop, 1000 hits): HTTP and one script, no queue | 0.90 ms | 3.00 ms |',
    );
    expect(evaluateTargets(results).filter((r) => r.id === 'P4')[0]?.measured).toBe('0.80 ms');
  });

  it("puts P1 through node:http's client in the low-load table, while P1 stays the bench client's figure", () => {
    const results = fullResults();
    const p1Before = evaluateTargets(results).filter((r) => r.id === 'P1')[0]?.measured;
    if (results.inferq !== undefined) {
      results.inferq.overheadNodeHttp = {
        model: 'noop',
        requests: 1000,
        overhead: latency(1.7, 6),
        endToEnd: latency(1.8, 6.1),
        inference: latency(0.1, 0.2),
        errors: {},
      };
    }
    const markdown = renderMarkdown(results);
    expect(markdown).toContain(
      "| overhead through node:http's client (noop, 1000 requests) | 1.70 ms | 6.00 ms |",
    );
    expect(evaluateTargets(results).filter((r) => r.id === 'P1')[0]?.measured).toBe(p1Before);
  });

  it("sets the workers' account of each load point beside the client's latency", () => {
    const results = fullResults();
    results.inferq!.curve = [
      {
        ...point(0.7, 20, 5),
        server: {
          requests: 700,
          queueMs: 3,
          batchWaitMs: 1.5,
          inferenceMs: 5,
          totalMs: 9.5,
          metObjective: 0.995,
        },
      },
    ];
    const markdown = renderMarkdown(results);
    expect(markdown).toContain("### Where the time went: the workers' account of each load point");
    expect(markdown).toContain(
      '| inferq | 70% | 5.00 ms | 20.0 ms | 3.00 ms | 1.50 ms | 5.00 ms | 9.50 ms | 99.5% |',
    );
  });

  it('escapes pipes inside table cells and lists failed scenarios', () => {
    const results = fullResults();
    if (results.inferq?.single) results.inferq.single.method = 'POST a|b';
    results.failures.push({ scenario: 'bulk', message: 'HTTP 404\nmore detail' });
    const markdown = renderMarkdown(results);
    expect(markdown).toContain('| `POST a\\|b` | 64 |');
    expect(markdown).toContain('- bulk: HTTP 404\n');
  });
});

describe('helpers', () => {
  it('formats milliseconds and rates for the table', () => {
    expect(formatMs(0.456)).toBe('0.46 ms');
    expect(formatMs(12.34)).toBe('12.3 ms');
    expect(formatMs(1234.5)).toBe('1,235 ms');
    expect(formatRate(10_500.4)).toBe('10,500 req/s');
    expect(formatRate(99.5, 'items/s')).toBe('100 items/s');
  });

  it('reads goodput and the sustained rate from a curve: every request answered, within bounds', () => {
    const failing = { ...point(0.8, 20, 1), failed: 1 };
    const slow = { ...point(0.9, 20, 1), throughputPerSecond: 800 };
    const curve = [point(0.2, 5, 1), point(0.5, 60, 1), failing, slow];
    // p99 ≤ 60 ms at 500; the 800 point failed a request; the 900 point is within 20 ms but behind.
    expect(goodput(curve, 60)).toBe(900);
    expect(goodput(curve, 10)).toBe(200);
    expect(goodput(curve, 1)).toBe(0);
    // 800 of 900 offered is 89%: not sustained.
    expect(sustainedRate(curve)).toBe(500);
    expect(goodput([], 60)).toBeUndefined();
    expect(sustainedRate(undefined)).toBeUndefined();
  });

  it('picks the curve point nearest a fraction', () => {
    const curve = [point(0.1, 1, 1), point(0.4, 1, 1), point(0.7, 1, 1), point(1, 1, 1)];
    expect(pointNear(curve, 0.7)?.fraction).toBe(0.7);
    expect(pointNear(curve, 0.62)?.fraction).toBe(0.7);
    expect(pointNear([], 0.7)).toBeUndefined();
  });
});

describe('backendsSection', () => {
  it('puts each queue backend’s P1, P3, P7, P6 and cache figures side by side, a dash where one was not measured', () => {
    const results = fullResults();
    results.inferqBullmq = {
      overhead: { ...results.inferq!.overhead!, overhead: latency(2.1, 9) },
      saturation: { ...load(800, 40, 70), concurrency: 64, meanBatchSize: 12 },
      curve: [point(0.7, 35, 5)],
    };
    expect(backendsSection(results)).toEqual([
      '### Queue backends side by side (`QUEUE_BACKEND`)',
      '',
      [
        '| measure | streams (default) | bullmq |',
        '| --- | --- | --- |',
        '| P1 no-op overhead p50 / p99 | 1.20 ms / 6.00 ms | 2.10 ms / 9.00 ms |',
        `| P3 ppocr-cls saturation (closed loop) | ${formatRate(1200, 'items/s')} (3.00× naive), mean batch 20.0 | ${formatRate(800, 'items/s')} (2.00× naive), mean batch 12.0 |`,
        `| P7 ppocr-cls p99 at 70% of its saturation | 20.0 ms at ${formatRate(700, 'items/s')} | 35.0 ms at ${formatRate(700, 'items/s')} |`,
        `| P9 ppocr-cls p99 at 90% of its saturation | 90.0 ms at ${formatRate(1000, 'items/s')} | 35.0 ms at ${formatRate(700, 'items/s')} |`,
        `| P9 open-loop sustainable rate | ${formatRate(1000)} (83% of closed loop) | ${formatRate(700)} (88% of closed loop) |`,
        '| P10 goodput at the — ms objective | — | — |',
        '| P11 API CPU per request at saturation | — | — |',
        `| P6 single submits | ${formatRate(4000)} | — |`,
        '| P6 infer:bulk | — | — |',
        '| P4 cache hit p50 | 0.80 ms | — |',
      ].join('\n'),
    ]);
    expect(renderMarkdown(results)).toContain('### Queue backends side by side');
    expect(renderMarkdown(fullResults())).not.toContain('### Queue backends side by side');
  });
});

describe('pipelineSection', () => {
  const steps = (scale: number, largest: [number, number]): PipelineLoadResult['steps'] => [
    { step: 'decode', kind: 'processor', requests: 100, meanMs: 4 * scale },
    {
      step: 'detect',
      kind: 'model',
      requests: 100,
      meanMs: 50 * scale,
      meanQueueMs: 5 * scale,
      meanInferMs: 40,
      largestBatch: largest[0],
    },
    {
      step: 'recognise',
      kind: 'model',
      requests: 100,
      meanMs: 30 * scale,
      meanItems: 3,
      meanQueueMs: 2 * scale,
      meanInferMs: 20,
      largestBatch: largest[1],
    },
  ];
  const loadResult = (
    concurrency: number,
    throughput: number,
    p50: number,
    p99: number,
    detBatch: number,
  ): PipelineLoadResult => ({
    ...load(throughput, p50, p99, 90 * concurrency),
    concurrency,
    batches: [
      { model: 'ppocr-det', steps: ['detect'], batches: 100, items: 100 * detBatch, meanBatchSize: detBatch },
      {
        model: 'ppocr-rec',
        steps: ['recognise'],
        batches: 100,
        items: 300 * detBatch,
        meanBatchSize: 3 * detBatch,
      },
    ],
    steps: steps(concurrency, detBatch === 1 ? [1, 3] : [4, 8]),
    meanQueueMs: 0.5 * concurrency,
    warmup: { sent: 10, ok: 10, errors: {} },
  });
  const ocr = (): PipelineResult => ({
    pipeline: 'ocr',
    image: 'examples/ocr/hello.png',
    imageBytes: 12_740,
    expectedLines: ['a', 'b', 'c'],
    lowLoad: loadResult(1, 9.876, 100, 150, 1),
    saturation: {
      ...loadResult(8, 20.5, 380, 600, 2.5),
      failed: 2,
      errors: { 'text other than the image reads': 2 },
    },
  });

  it("gives images/s, latency and each model step's mean batch at each load, then where the time goes", () => {
    expect(pipelineSection(ocr())).toEqual([
      '### ocr pipeline (streams queue; `examples/ocr/hello.png`, 12,740 bytes, `"cache": false`)',
      '',
      [
        '| load | clients | images | images/s | p50 | p99 | detect (ppocr-det): mean batch (largest) | recognise (ppocr-rec): mean batch (largest) | errors |',
        '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
        '| low load | 1 | 100 | 9.88 images/s | 100 ms | 150 ms | 1.0 (1) | 3.0 (3) | 0 |',
        '| saturation | 8 | 100 | 20.50 images/s | 380 ms | 600 ms | 2.5 (4) | 7.5 (8) | 2 text other than the image reads |',
      ].join('\n'),
      '',
      "### ocr pipeline: where the time goes (mean per image; model steps: their model requests' mean time queued and in inference)",
      '',
      [
        '| step | kind | low load | saturation |',
        '| --- | --- | --- | --- |',
        '| decode | processor | 4.00 ms | 32.0 ms |',
        '| detect | model | 50.0 ms (queued 5.00 ms, inference 40.0 ms) | 400 ms (queued 40.0 ms, inference 40.0 ms) |',
        '| recognise | model, per item (3 per image) | 30.0 ms (queued 2.00 ms, inference 20.0 ms) | 240 ms (queued 16.0 ms, inference 20.0 ms) |',
        '| the request queued, until a worker took it (record `queueMs`) | — | 0.50 ms | 4.00 ms |',
        '| all steps (record `inferMs`) | — | 90.0 ms | 720 ms |',
        '| end to end (client) | — | 100 ms | 380 ms |',
      ].join('\n'),
    ]);
  });

  it('shows the loads that were measured, and is in the report only when the scenario ran', () => {
    const result = ocr();
    delete result.saturation;
    const section = pipelineSection(result);
    expect(section[2]?.split('\n')).toHaveLength(3);
    expect(section[6]?.split('\n')[0]).toBe('| step | kind | low load |');
    expect(pipelineSection({ ...result, lowLoad: undefined } as PipelineResult)).toEqual([]);
    const results = fullResults();
    expect(renderMarkdown(results)).not.toContain('ocr pipeline');
    results.inferq!.ocr = ocr();
    expect(renderMarkdown(results)).toContain(`\n\n${pipelineSection(ocr()).join('\n')}\n`);
  });
});
