/**
 * `npm run bench`: every contender on the same model, inputs and machine, one after another, and a
 * report of each target (P1–P11, docs/performance.md) with the figures behind it. See docs/performance.md.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runDirect } from './contenders/direct.ts';
import { type InferqDeployment, startAllInOne, startSplit } from './contenders/inferq.ts';
import {
  measureBullmqReference,
  NAIVE_WORKER_CONCURRENCY,
  type NaiveDeployment,
  startNaive,
} from './contenders/naive.ts';
import { ApiClient, type InferClient, NodeHttpClient } from './lib/http.ts';
import { DistinctInputs } from './lib/inputs.ts';
import { type BenchModel, loadBenchModel, loadBenchPipeline, powersOfTwoUpTo } from './lib/models.ts';
import { ContenderStartError } from './lib/processes.ts';
import { PROFILES, type Profile } from './lib/profile.ts';
import { Progress } from './lib/progress.ts';
import { formatMs, formatRate, renderMarkdown } from './lib/report.ts';
import type { BenchResults, CurvePoint, InferqResults, MachineInfo, OverheadResult } from './lib/results.ts';
import { renderLinePlot } from './lib/svg.ts';
import {
  inferqLoadTarget,
  measureBulkThroughput,
  measureCache,
  measureCoalescing,
  measureOverhead,
  measureSingleThroughput,
  OPEN_LOOP_CONNECTIONS,
} from './scenarios/inferq.ts';
import { type LoadTarget, measureCurve, measureSaturation } from './scenarios/load-curves.ts';
import {
  measurePipelineLoad,
  OCR_IMAGE,
  OCR_LINES,
  PIPELINE_CLIENTS,
  pipelineJsonBody,
} from './scenarios/pipeline.ts';

const SCENARIOS = [
  'direct',
  'naive',
  'overhead',
  'cache',
  'coalescing',
  'saturation',
  'latency',
  'single',
  'bulk',
  'workers',
  'ocr',
] as const;
type Scenario = (typeof SCENARIOS)[number];
/** Scenarios that run against the all-in-one `inferq serve`. */
const ALL_IN_ONE: readonly Scenario[] = [
  'overhead',
  'cache',
  'coalescing',
  'saturation',
  'latency',
  'single',
  'bulk',
];

const USAGE = `usage: npm run bench -- [--quick] [--only <scenario,...>] [--out <dir>] [--seed <n>]

  --quick          short measurements (under two minutes on 2 cores); default: the full run
  --only <list>    run only these scenarios (comma-separated): ${SCENARIOS.join(', ')}
                   (latency implies saturation, whose rate it needs)
  --out <dir>      where latest.json, latest.md and latency-vs-load.svg go (default bench/results)
  --seed <n>       seed of the inputs and arrival schedules (default 1)
`;

interface Options {
  profile: Profile;
  scenarios: Set<Scenario>;
  outDir: string;
  seed: number;
}

function parseOptions(argv: string[], repoRoot: string): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      out: { type: 'string' },
      seed: { type: 'string', default: '1' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const scenarios = new Set<Scenario>();
  for (const name of (values.only ?? SCENARIOS.join(',')).split(',').map((s) => s.trim())) {
    if (name === '') continue;
    if (!(SCENARIOS as readonly string[]).includes(name)) {
      throw new UsageError(`unknown scenario '${name}'; known: ${SCENARIOS.join(', ')}`);
    }
    scenarios.add(name as Scenario);
  }
  if (scenarios.size === 0) throw new UsageError('--only names no scenario');
  if (scenarios.has('latency')) scenarios.add('saturation');
  const seed = Number(values.seed);
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new UsageError(`--seed must be a non-negative integer, got ${values.seed}`);
  return {
    profile: values.quick ? PROFILES.quick : PROFILES.full,
    scenarios,
    outDir: resolve(values.out ?? join(repoRoot, 'bench', 'results')),
    seed,
  };
}

class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** bench/dist/main.js → the repository root (the folder whose package.json declares the workspaces). */
function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && 'workspaces' in (JSON.parse(readFileSync(manifest, 'utf8')) as object))
      return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the repository root above bench/');
    dir = parent;
  }
}

function machineInfo(repoRoot: string): MachineInfo {
  const version = (file: string): string => {
    try {
      return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
    } catch {
      return 'unknown';
    }
  };
  let redisServer = 'unknown';
  try {
    redisServer =
      /v=(\S+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8' }))?.[1] ?? 'unknown';
  } catch {
    redisServer = 'not found';
  }
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    onnxruntimeNode: version(join(repoRoot, 'node_modules', 'onnxruntime-node', 'package.json')),
    redisServer,
  };
}

/** The seed of a model's inputs: the same for every contender, different for each model. */
function inputSeed(seed: number, model: BenchModel): number {
  return seed * 1000 + model.name.length;
}

function requireBuilt(repoRoot: string): void {
  for (const app of ['api', 'worker', 'cli']) {
    const entry = join(repoRoot, 'apps', app, 'dist', 'main.js');
    if (!existsSync(entry)) throw new UsageError(`${entry} is missing: run \`npm run build\` first`);
  }
}

function curveLine(name: string, point: CurvePoint): string {
  return (
    `  ${name} ${String(Math.round(point.fraction * 100)).padStart(3)}%: offered ${formatRate(point.offeredPerSecond)}, ` +
    `achieved ${formatRate(point.throughputPerSecond)}, p50 ${formatMs(point.latency.p50Ms)}, p99 ${formatMs(point.latency.p99Ms)}` +
    (point.failed > 0 ? `, ${point.failed} failed` : '')
  );
}

async function main(): Promise<number> {
  const repoRoot = findRepoRoot();
  const options = parseOptions(process.argv.slice(2), repoRoot);
  requireBuilt(repoRoot);
  const { profile, scenarios, seed } = options;
  const want = (scenario: Scenario): boolean => scenarios.has(scenario);
  const progress = new Progress();
  const startedAt = new Date();
  const cls = loadBenchModel(repoRoot, 'ppocr-cls');
  const noop = loadBenchModel(repoRoot, 'noop');
  // Every contender gets the same sequence of inputs: one item each, [1, ...itemShape].
  const inputsFor = (model: BenchModel): DistinctInputs =>
    new DistinctInputs({
      inputName: model.inputName,
      shape: [1, ...model.itemShape],
      seed: inputSeed(seed, model),
    });
  const workerScript = join(dirname(fileURLToPath(import.meta.url)), 'naive-worker.js');
  const saturationClients = 2 * cls.maxBatchSize;

  const results: BenchResults = {
    version: 1,
    profile: profile.name,
    scenarios: SCENARIOS.filter(want),
    seed,
    startedAt: startedAt.toISOString(),
    wallSeconds: 0,
    machine: machineInfo(repoRoot),
    models: Object.fromEntries(
      [cls, noop].map((m) => [
        m.name,
        {
          maxBatchSize: m.maxBatchSize,
          maxBatchDelayMs: m.maxBatchDelayMs,
          ...(m.latencyObjectiveMs === undefined ? {} : { latencyObjectiveMs: m.latencyObjectiveMs }),
        },
      ]),
    ),
    failures: [],
  };

  // What is running now, so that Ctrl-C stops it (and its redis-server) before exiting.
  let running: { stop(): Promise<void> } | undefined;
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    progress.stage(`${signal}: stopping what is running (again to exit at once)`);
    void (running?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const attempt = async (scenario: string, body: () => Promise<void>): Promise<void> => {
    try {
      await body();
    } catch (error: unknown) {
      const message = error instanceof Error ? error.message : String(error);
      results.failures.push({ scenario, message });
      const kind = error instanceof ContenderStartError ? 'could not start its contender' : 'failed';
      progress.stage(`${scenario} ${kind}:\n${message}`);
    }
  };

  progress.stage(
    `profile ${profile.name}; scenarios ${[...scenarios].join(', ')}; ${results.machine.cpus} cores, ${results.machine.cpuModel}, Node ${process.version}`,
  );

  if (want('direct')) {
    progress.stage(
      `direct: onnxruntime-node in process, ${cls.name}, batch sizes ${powersOfTwoUpTo(cls.maxBatchSize).join(', ')}`,
    );
    await attempt('direct', async () => {
      results.direct = await runDirect(
        cls,
        {
          batchSizes: powersOfTwoUpTo(cls.maxBatchSize),
          warmupMs: Math.min(profile.warmupMs, 1_000),
          durationMs: profile.directMs,
          seed: inputSeed(seed, cls),
        },
        progress,
      );
    });
  }

  if (want('naive')) {
    progress.stage(
      `naive: BullMQ worker process (concurrency ${NAIVE_WORKER_CONCURRENCY}), one job per inference, ${cls.name}`,
    );
    results.naive = { workerConcurrency: NAIVE_WORKER_CONCURRENCY };
    await attempt('naive reference loop', async () => {
      progress.stage(
        `reference: bare BullMQ add → waitUntilFinished, one at a time, ${profile.overheadRequests} jobs`,
      );
      const reference = await measureBullmqReference(
        profile.overheadWarmupRequests,
        profile.overheadRequests,
      );
      if (results.naive !== undefined) results.naive.referenceLoop = reference;
      progress.stage(`  reference loop p50 ${formatMs(reference.p50Ms)}, p99 ${formatMs(reference.p99Ms)}`);
    });
    let naive: NaiveDeployment | undefined;
    await attempt('naive', async () => {
      naive = await startNaive(cls, inputsFor(cls), workerScript);
      running = naive;
      const target: LoadTarget = { send: naive.send };
      progress.stage(
        `naive: saturation, closed loop, ${saturationClients} clients, ${profile.saturationMs / 1000} s`,
      );
      const saturation = await measureSaturation(
        target,
        { concurrency: saturationClients, warmupMs: profile.warmupMs, durationMs: profile.saturationMs },
        (line) => progress.update(`naive saturation: ${line}`),
      );
      if (results.naive !== undefined) results.naive.saturation = saturation;
      progress.stage(`  naive saturation: ${formatRate(saturation.throughputPerSecond, 'items/s')}`);
      if (saturation.ok === 0) throw new Error(`no request succeeded: ${JSON.stringify(saturation.errors)}`);
      progress.stage(
        `naive: latency against offered load, ${profile.curveFractions.length} points of ${profile.curvePointMs / 1000} s`,
      );
      const curve = await measureCurve(
        target,
        {
          saturationPerSecond: saturation.throughputPerSecond,
          fractions: profile.curveFractions,
          pointMs: profile.curvePointMs,
          drainTimeoutMs: profile.drainTimeoutMs,
          seed: seed * 7919,
        },
        (fraction, line) => progress.update(`naive at ${Math.round(fraction * 100)}%: ${line}`),
        (point) => progress.stage(curveLine('naive', point)),
      );
      if (results.naive !== undefined) results.naive.curve = curve;
    });
    await naive?.stop();
    running = undefined;
  }

  // The all-in-one scenarios on each queue backend, in one run (docs/performance.md compares them).
  for (const backend of ['streams', 'bullmq'] as const) {
    const suffix = backend === 'streams' ? '' : ` (${backend})`;
    if (ALL_IN_ONE.some(want)) {
      progress.stage(
        `inferq (${backend} queue): starting \`node apps/cli/dist/main.js serve\` (private redis-server, API, 1 worker)`,
      );
      let deployment: InferqDeployment | undefined;
      await attempt(`inferq serve${suffix}`, async () => {
        deployment = await startAllInOne(repoRoot, [noop, cls], backend);
        running = deployment;
      });
      if (deployment === undefined) {
        for (const scenario of ALL_IN_ONE.filter(want)) {
          results.failures.push({ scenario: `${scenario}${suffix}`, message: 'inferq serve did not start' });
        }
      } else {
        const d = deployment;
        const inferq: InferqResults = {};
        if (backend === 'streams') results.inferq = inferq;
        else results.inferqBullmq = inferq;
        const noopInputs = inputsFor(noop);
        const clsInputs = inputsFor(cls);

        if (want('overhead')) {
          progress.stage(
            `overhead (P1): ${profile.overheadRequests} noop requests, one at a time, Prefer: wait=5`,
          );
          // P1's measurement, through the bench's client or another one; a run where no request
          // succeeded is a failed scenario, not a figure.
          const overheadOf = async (measured: number, client?: InferClient): Promise<OverheadResult> => {
            const o = await measureOverhead(
              d,
              noop,
              noopInputs,
              { warmup: profile.overheadWarmupRequests, measured },
              (line) => progress.update(line),
              client,
            );
            if (o.requests === 0) throw new Error(`no request succeeded: ${JSON.stringify(o.errors)}`);
            return o;
          };
          await attempt(`overhead${suffix}`, async () => {
            const o = await overheadOf(profile.overheadRequests);
            inferq.overhead = o;
            progress.stage(
              `  overhead p50 ${formatMs(o.overhead.p50Ms)}, p99 ${formatMs(o.overhead.p99Ms)} (end-to-end p50 ${formatMs(o.endToEnd.p50Ms)})`,
            );
          });
          await attempt(`overhead (node:http's client)${suffix}`, async () => {
            const o = await overheadOf(profile.cacheRequests, new NodeHttpClient(d.apiUrl));
            inferq.overheadNodeHttp = o;
            progress.stage(
              `  through node:http's client: overhead p50 ${formatMs(o.overhead.p50Ms)}, p99 ${formatMs(o.overhead.p99Ms)}`,
            );
          });
          await attempt(`overhead (noop cache hits)${suffix}`, async () => {
            const floor = await measureCache(d, noop, noopInputs, profile.cacheRequests, (line) =>
              progress.update(line),
            );
            inferq.noopCache = floor;
            progress.stage(
              `  noop cache hit p50 ${formatMs(floor.latency.p50Ms)} (HTTP and one script, no queue: the floor under P1)`,
            );
          });
        }
        if (want('cache')) {
          progress.stage(`cache (P4): ${profile.cacheRequests} repeated ${cls.name} inputs`);
          await attempt(`cache${suffix}`, async () => {
            const c = await measureCache(d, cls, clsInputs, profile.cacheRequests, (line) =>
              progress.update(line),
            );
            inferq.cache = c;
            progress.stage(
              `  cache hit p50 ${formatMs(c.latency.p50Ms)}, ${c.queueEventsAdded} queue events, ${c.modelRuns} model runs`,
            );
          });
        }
        if (want('coalescing')) {
          progress.stage(
            `coalescing (P5): ${profile.coalescingRequests} identical ${cls.name} requests in flight`,
          );
          await attempt(`coalescing${suffix}`, async () => {
            const c = await measureCoalescing(d, cls, clsInputs, profile.coalescingRequests);
            inferq.coalescing = c;
            progress.stage(
              `  ${c.modelRuns} model run(s), ${c.coalescedCounter} coalesced, ${c.succeeded} succeeded`,
            );
          });
        }
        if (want('saturation')) {
          progress.stage(
            `saturation (P2, P3): ${cls.name}, closed loop, ${saturationClients} clients, ${profile.saturationMs / 1000} s`,
          );
          await attempt(`saturation${suffix}`, async () => {
            const client = new ApiClient(d.apiUrl, saturationClients);
            try {
              const s = await measureSaturation(
                inferqLoadTarget(d, client, cls, clsInputs),
                {
                  concurrency: saturationClients,
                  warmupMs: profile.warmupMs,
                  durationMs: profile.saturationMs,
                },
                (line) => progress.update(`inferq saturation: ${line}`),
              );
              inferq.saturation = s;
              progress.stage(
                `  inferq saturation: ${formatRate(s.throughputPerSecond, 'items/s')}, mean batch ${s.meanBatchSize?.toFixed(1) ?? '—'}`,
              );
              if (s.ok === 0) throw new Error(`no request succeeded: ${JSON.stringify(s.errors)}`);
            } finally {
              await client.close();
            }
          });
        }
        if (want('latency') && inferq.saturation !== undefined && inferq.saturation.ok > 0) {
          const saturation = inferq.saturation;
          progress.stage(
            `latency (P7): ${profile.curveFractions.length} open-loop points of ${profile.curvePointMs / 1000} s`,
          );
          await attempt(`latency${suffix}`, async () => {
            const client = new ApiClient(d.apiUrl, OPEN_LOOP_CONNECTIONS);
            try {
              inferq.curve = await measureCurve(
                inferqLoadTarget(d, client, cls, clsInputs),
                {
                  saturationPerSecond: saturation.throughputPerSecond,
                  fractions: profile.curveFractions,
                  pointMs: profile.curvePointMs,
                  drainTimeoutMs: profile.drainTimeoutMs,
                  seed: seed * 7919,
                },
                (fraction, line) => progress.update(`inferq at ${Math.round(fraction * 100)}%: ${line}`),
                (point) => progress.stage(curveLine('inferq', point)),
              );
            } finally {
              await client.close();
            }
          });
        } else if (want('latency')) {
          results.failures.push({
            scenario: `latency${suffix}`,
            message: 'needs a successful saturation measurement',
          });
        }
        if (want('single')) {
          progress.stage(
            `single submits (P6): noop, ${profile.singleConnections} connections, ${profile.throughputWindowMs / 1000} s`,
          );
          await attempt(`single${suffix}`, async () => {
            const t = await measureSingleThroughput(
              d,
              noop,
              noopInputs,
              {
                connections: profile.singleConnections,
                windowMs: profile.throughputWindowMs,
                drainTimeoutMs: profile.drainTimeoutMs,
              },
              (line) => progress.update(line),
            );
            inferq.single = t;
            progress.stage(
              `  single: ${formatRate(t.acceptedPerSecond)} accepted, ${formatRate(t.throughputPerSecond)} finished`,
            );
            if (t.accepted === 0) throw new Error(`every submit was refused: ${JSON.stringify(t.errors)}`);
          });
        }
        if (want('bulk')) {
          progress.stage(
            `bulk (P6): noop, infer:bulk with ${profile.bulkSize} per body, ${profile.bulkConnections} connections, ${profile.throughputWindowMs / 1000} s`,
          );
          await attempt(`bulk${suffix}`, async () => {
            const t = await measureBulkThroughput(
              d,
              noop,
              noopInputs,
              {
                connections: profile.bulkConnections,
                windowMs: profile.throughputWindowMs,
                drainTimeoutMs: profile.drainTimeoutMs,
                bulkSize: profile.bulkSize,
              },
              (line) => progress.update(line),
            );
            inferq.bulk = t;
            progress.stage(
              `  bulk: ${formatRate(t.acceptedPerSecond)} accepted, ${formatRate(t.throughputPerSecond)} finished`,
            );
            if (t.accepted === 0)
              throw new Error(`every infer:bulk submit was refused: ${JSON.stringify(t.errors)}`);
          });
        }
        progress.stage(`inferq (${backend} queue): stopping`);
        await d.stop();
        running = undefined;
      }
    }
  }

  if (want('ocr')) {
    await attempt('ocr', async () => {
      const pipeline = loadBenchPipeline(repoRoot, 'ocr');
      for (const [name, settings] of Object.entries(pipeline.models)) results.models[name] ??= settings;
      const image = readFileSync(join(repoRoot, OCR_IMAGE));
      const ocr: NonNullable<InferqResults['ocr']> = {
        pipeline: pipeline.name,
        image: OCR_IMAGE,
        imageBytes: image.byteLength,
        expectedLines: OCR_LINES,
      };
      results.inferq ??= {};
      results.inferq.ocr = ocr;
      progress.stage(
        `ocr: starting \`inferq serve\` (streams queue) on the ocr pipeline and ${Object.keys(pipeline.models).join(', ')}`,
      );
      const deployment = await startAllInOne(repoRoot, [], 'streams', [pipeline]);
      running = deployment;
      const client = new ApiClient(deployment.apiUrl, PIPELINE_CLIENTS);
      try {
        const request = { body: pipelineJsonBody('image', image), expectedLines: OCR_LINES };
        const batchLine = (r: NonNullable<typeof ocr.lowLoad>): string =>
          r.batches.map((b) => `${b.model} ${b.meanBatchSize?.toFixed(2) ?? '—'}`).join(', ');
        progress.stage(
          `ocr low load: one client, up to ${profile.pipelineLowLoadRequests} images of ${OCR_IMAGE}, one at a time`,
        );
        const low = await measurePipelineLoad(
          deployment,
          client,
          pipeline,
          request,
          {
            concurrency: 1,
            warmupMs: profile.pipelineWarmupMs,
            durationMs: profile.pipelineLowLoadMaxMs,
            requests: profile.pipelineLowLoadRequests,
          },
          (line) => progress.update(`ocr low load: ${line}`),
        );
        ocr.lowLoad = low;
        progress.stage(
          `  ocr low load: ${low.throughputPerSecond.toFixed(2)} images/s, p50 ${formatMs(low.latency.p50Ms)}, p99 ${formatMs(low.latency.p99Ms)}; mean batch ${batchLine(low)}`,
        );
        if (low.ok === 0) throw new Error(`no request succeeded: ${JSON.stringify(low.errors)}`);
        progress.stage(
          `ocr saturation: ${PIPELINE_CLIENTS} clients, closed loop, ${profile.pipelineSaturationMs / 1000} s`,
        );
        const saturated = await measurePipelineLoad(
          deployment,
          client,
          pipeline,
          request,
          {
            concurrency: PIPELINE_CLIENTS,
            warmupMs: profile.pipelineWarmupMs,
            durationMs: profile.pipelineSaturationMs,
          },
          (line) => progress.update(`ocr saturation: ${line}`),
        );
        ocr.saturation = saturated;
        progress.stage(
          `  ocr saturation: ${saturated.throughputPerSecond.toFixed(2)} images/s, p50 ${formatMs(saturated.latency.p50Ms)}, p99 ${formatMs(saturated.latency.p99Ms)}; mean batch ${batchLine(saturated)}`,
        );
        if (saturated.ok === 0) throw new Error(`no request succeeded: ${JSON.stringify(saturated.errors)}`);
        // Every answer counts, the warm-ups' too: a wrong one means the figures are not of OCR.
        const failures = [low, saturated].reduce((sum, r) => sum + r.failed + r.warmup.sent - r.warmup.ok, 0);
        if (failures > 0)
          throw new Error(
            `${failures} answer(s) failed or read other text: ${JSON.stringify({
              lowLoad: low.errors,
              lowLoadWarmup: low.warmup.errors,
              saturation: saturated.errors,
              saturationWarmup: saturated.warmup.errors,
            })}`,
          );
      } finally {
        await client.close();
        progress.stage('ocr: stopping');
        await deployment.stop();
        running = undefined;
      }
    });
  }

  if (want('workers')) {
    const inferq = results.inferq ?? {};
    results.inferq = inferq;
    inferq.workers = [];
    for (const workers of profile.workerCounts) {
      const clients = saturationClients * workers;
      progress.stage(
        `workers: redis-server + API + ${workers} worker process(es), ${cls.name}, ${clients} clients`,
      );
      let deployment: InferqDeployment | undefined;
      await attempt(`workers (${workers})`, async () => {
        deployment = await startSplit(repoRoot, [cls], workers);
        running = deployment;
        const client = new ApiClient(deployment.apiUrl, clients);
        try {
          const saturation = await measureSaturation(
            inferqLoadTarget(deployment, client, cls, inputsFor(cls)),
            { concurrency: clients, warmupMs: profile.warmupMs, durationMs: profile.saturationMs },
            (line) => progress.update(`${workers} worker(s): ${line}`),
          );
          inferq.workers?.push({ workers, saturation });
          progress.stage(
            `  ${workers} worker(s): ${formatRate(saturation.throughputPerSecond, 'items/s')}, mean batch ${saturation.meanBatchSize?.toFixed(1) ?? '—'}`,
          );
        } finally {
          await client.close();
        }
      });
      await deployment?.stop();
      running = undefined;
    }
  }

  results.wallSeconds = progress.seconds;
  const markdown = renderMarkdown(results);
  mkdirSync(options.outDir, { recursive: true });
  writeFileSync(join(options.outDir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(
    join(options.outDir, 'latest.md'),
    `${markdown}\n![p50 and p99 latency against achieved throughput](latency-vs-load.svg)\n`,
  );
  const plotted = writePlot(results, join(options.outDir, 'latency-vs-load.svg'));
  process.stdout.write(markdown);
  progress.stage(
    `wrote ${['latest.json', 'latest.md', ...(plotted ? ['latency-vs-load.svg'] : [])].map((f) => join(options.outDir, f)).join(', ')} in ${Math.round(results.wallSeconds)} s`,
  );
  if (results.failures.length > 0) {
    progress.stage(
      `${results.failures.length} scenario(s) failed: ${results.failures.map((f) => f.scenario).join(', ')}`,
    );
    return 1;
  }
  return 0;
}

/** The latency-versus-load plot of inferq and the naive baseline; false when neither curve was measured. */
function writePlot(results: BenchResults, file: string): boolean {
  const inferq = results.inferq?.curve ?? [];
  const naive = results.naive?.curve ?? [];
  const bullmq = results.inferqBullmq?.curve ?? [];
  const objective = results.models['ppocr-cls']?.latencyObjectiveMs;
  if (inferq.length === 0 && naive.length === 0) return false;
  const series = (curve: CurvePoint[], key: 'p50Ms' | 'p99Ms') =>
    curve.map((point) => ({ x: point.throughputPerSecond, y: point.latency[key] }));
  const svg = renderLinePlot({
    title: 'ppocr-cls: latency against achieved throughput (open loop, Poisson arrivals)',
    subtitle: `${results.machine.cpus} cores, ${results.machine.cpuModel}, Node ${results.machine.node}; profile ${results.profile}, ${results.startedAt.slice(0, 10)}`,
    xLabel: 'achieved throughput (requests/s)',
    yLabel: 'latency from scheduled send (ms, log scale)',
    series: [
      { label: 'inferq p50', color: '#1f77b4', dashed: false, points: series(inferq, 'p50Ms') },
      { label: 'inferq p99', color: '#1f77b4', dashed: true, points: series(inferq, 'p99Ms') },
      { label: 'inferq (bullmq) p99', color: '#9467bd', dashed: true, points: series(bullmq, 'p99Ms') },
      { label: 'naive BullMQ p50', color: '#d62728', dashed: false, points: series(naive, 'p50Ms') },
      { label: 'naive BullMQ p99', color: '#d62728', dashed: true, points: series(naive, 'p99Ms') },
    ],
    ...(objective === undefined
      ? {}
      : {
          levels: [{ y: objective, label: `ppocr-cls objective (p99 ≤ ${objective} ms)`, color: '#2ca02c' }],
        }),
  });
  writeFileSync(file, svg);
  return true;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof UsageError || (error instanceof TypeError && 'code' in error)) {
      process.stderr.write(`bench: ${error.message}\n\n${USAGE}`);
      process.exit(2);
    }
    process.stderr.write(
      `bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
