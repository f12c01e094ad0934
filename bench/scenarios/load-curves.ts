import { type ProgressSink, runClosedLoop, runOpenLoop, type Send } from '../lib/load.ts';
import type { CurvePoint, SaturationResult } from '../lib/results.ts';
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
    const { result, meanBatchSize } = await meanBatchSizeDuring(target, () =>
      runOpenLoop({
        schedule,
        send: target.send,
        drainTimeoutMs: options.drainTimeoutMs,
        progress: (line) => progress(fraction, line),
      }),
    );
    const point: CurvePoint = { ...result, fraction, offeredPerSecond, meanBatchSize };
    points.push(point);
    onPoint(point);
  }
  return points;
}
