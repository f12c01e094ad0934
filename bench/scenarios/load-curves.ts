import { type ProgressSink, runClosedLoop, runOpenLoop, type Send } from '../lib/load.ts';
import type { CurvePoint, SaturationResult, ServerTimings } from '../lib/results.ts';
import { poissonSchedule } from '../lib/schedule.ts';

/** Batches run and requests in them so far, summed over a contender's workers. */
export interface BatchCounters {
  batches: number;
  items: number;
}

/** A contender as the load scenarios drive it. */
export interface LoadTarget {
  /** Sends one request with a new distinct input and resolves when its result is in. */
  send: Send;
  /** Reads the workers' batch counters, where the contender has them. */
  batchCounters?: () => Promise<BatchCounters>;
  /** Reads the CPU time its API process has used so far (s), where the contender has one. */
  apiCpuSeconds?: () => Promise<number>;
  /** Reads the workers' phase and objective counters so far, where the contender has them. */
  serverCounters?: () => Promise<ServerCounters>;
}

/** Running totals of the workers' phase histograms and objective counters. */
export interface ServerCounters {
  /** Per phase (queue, batch_wait, inference, total): seconds summed and requests counted. */
  phases: Record<string, { sum: number; count: number }>;
  met: number;
  missed: number;
}

/** What the workers measured between two readings of their counters. */
export function serverTimingsBetween(
  before: ServerCounters,
  after: ServerCounters,
): ServerTimings | undefined {
  const mean = (phase: string): number => {
    const count = (after.phases[phase]?.count ?? 0) - (before.phases[phase]?.count ?? 0);
    const sum = (after.phases[phase]?.sum ?? 0) - (before.phases[phase]?.sum ?? 0);
    return count > 0 ? (sum / count) * 1000 : 0;
  };
  const requests = (after.phases.total?.count ?? 0) - (before.phases.total?.count ?? 0);
  if (requests <= 0) return undefined;
  const met = after.met - before.met;
  const judged = met + (after.missed - before.missed);
  return {
    requests,
    queueMs: mean('queue'),
    batchWaitMs: mean('batch_wait'),
    inferenceMs: mean('inference'),
    totalMs: mean('total'),
    ...(judged > 0 ? { metObjective: met / judged } : {}),
  };
}

async function meanBatchSizeDuring<T>(
  target: LoadTarget,
  measure: () => Promise<T>,
): Promise<{ result: T; meanBatchSize: number | undefined }> {
  const before = await target.batchCounters?.();
  const result = await measure();
  const after = await target.batchCounters?.();
  if (before === undefined || after === undefined || after.batches === before.batches) {
    return { result, meanBatchSize: undefined };
  }
  return { result, meanBatchSize: (after.items - before.items) / (after.batches - before.batches) };
}

/** Saturation throughput: a closed loop of `concurrency` clients after an unmeasured warm-up. */
export async function measureSaturation(
  target: LoadTarget,
  options: { concurrency: number; warmupMs: number; durationMs: number },
  progress: ProgressSink,
): Promise<SaturationResult> {
  const { concurrency } = options;
  await runClosedLoop({
    concurrency,
    durationMs: options.warmupMs,
    send: target.send,
    progress: (line) => progress(`warm-up: ${line}`),
  });
  const cpuBefore = await target.apiCpuSeconds?.();
  const { result, meanBatchSize } = await meanBatchSizeDuring(target, () =>
    runClosedLoop({ concurrency, durationMs: options.durationMs, send: target.send, progress }),
  );
  const cpuAfter = await target.apiCpuSeconds?.();
  const apiCpuMsPerRequest =
    cpuBefore === undefined || cpuAfter === undefined || result.ok === 0
      ? undefined
      : ((cpuAfter - cpuBefore) * 1000) / result.ok;
  return { ...result, concurrency, meanBatchSize, apiCpuMsPerRequest };
}

/**
 * Latency against offered load: for each fraction of `saturationPerSecond`, an open-loop Poisson run
 * of `pointMs` (each point with its own seeded schedule), latencies from the scheduled send times.
 */
export async function measureCurve(
  target: LoadTarget,
  options: {
    saturationPerSecond: number;
    fractions: readonly number[];
    pointMs: number;
    drainTimeoutMs: number;
    seed: number;
  },
  progress: (fraction: number, line: string) => void,
  onPoint: (point: CurvePoint) => void,
): Promise<CurvePoint[]> {
  const points: CurvePoint[] = [];
  for (const [i, fraction] of options.fractions.entries()) {
    const offeredPerSecond = fraction * options.saturationPerSecond;
    const schedule = poissonSchedule({
      ratePerSecond: offeredPerSecond,
      durationMs: options.pointMs,
      seed: options.seed + i,
    });
    const countersBefore = await target.serverCounters?.();
    const { result, meanBatchSize } = await meanBatchSizeDuring(target, () =>
      runOpenLoop({
        schedule,
        send: target.send,
        drainTimeoutMs: options.drainTimeoutMs,
        progress: (line) => progress(fraction, line),
      }),
    );
    const countersAfter = await target.serverCounters?.();
    const server =
      countersBefore === undefined || countersAfter === undefined
        ? undefined
        : serverTimingsBetween(countersBefore, countersAfter);
    const point: CurvePoint = { ...result, fraction, offeredPerSecond, meanBatchSize, server };
    points.push(point);
    onPoint(point);
  }
  return points;
}
