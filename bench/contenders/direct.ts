import { performance } from 'node:perf_hooks';
import ort from 'onnxruntime-node';
import { DistinctInputs } from '../lib/inputs.ts';
import { LatencyHistogram, type LatencySummary } from '../lib/latency.ts';
import type { BenchModel } from '../lib/models.ts';
import type { Progress } from '../lib/progress.ts';

export interface DirectBatchResult {
  batchSize: number;
  runs: number;
  /** Time of one `session.run` of the whole batch. */
  batchLatency: LatencySummary;
  itemsPerSecond: number;
}

export interface DirectResult {
  model: string;
  perBatchSize: DirectBatchResult[];
  best: { batchSize: number; itemsPerSecond: number };
}

export interface DirectOptions {
  batchSizes: readonly number[];
  warmupMs: number;
  durationMs: number;
  seed: number;
}

/** Runs `session.run` back to back for `durationMs`; returns the runs and their latencies. */
async function runFor(
  session: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
  durationMs: number,
): Promise<{ runs: number; elapsedMs: number; histogram: LatencyHistogram }> {
  const histogram = new LatencyHistogram();
  const start = performance.now();
  let runs = 0;
  let now = start;
  while (now - start < durationMs) {
    const before = now;
    await session.run(feeds);
    now = performance.now();
    histogram.record(now - before);
    runs++;
  }
  return { runs, elapsedMs: now - start, histogram };
}

/**
 * The ceiling: onnxruntime-node in this process, no queue, no HTTP, one batch after another at each
 * batch size, with the session options the inferq worker uses (CPU provider, every graph
 * optimisation, onnxruntime's default thread count).
 */
export async function runDirect(
  model: BenchModel,
  options: DirectOptions,
  progress: Progress,
): Promise<DirectResult> {
  const session = await ort.InferenceSession.create(model.modelPath, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
  });
  // The same seeded sequence of single-item inputs the other contenders receive, stacked.
  const inputs = new DistinctInputs({
    inputName: model.inputName,
    shape: [1, ...model.itemShape],
    seed: options.seed,
  });
  const perBatchSize: DirectBatchResult[] = [];
  try {
    for (const batchSize of options.batchSizes) {
      const itemElements = model.itemShape.reduce((product, dim) => product * dim, 1);
      const batch = new Float32Array(batchSize * itemElements);
      for (let i = 0; i < batchSize; i++) batch.set(inputs.nextTensor(), i * itemElements);
      const feeds = { [model.inputName]: new ort.Tensor('float32', batch, [batchSize, ...model.itemShape]) };
      progress.update(`direct batch ${batchSize}: warming up`);
      await runFor(session, feeds, options.warmupMs);
      progress.update(`direct batch ${batchSize}: measuring ${options.durationMs / 1000} s`);
      const { runs, elapsedMs, histogram } = await runFor(session, feeds, options.durationMs);
      const itemsPerSecond = (runs * batchSize * 1000) / elapsedMs;
      perBatchSize.push({ batchSize, runs, batchLatency: histogram.summary(), itemsPerSecond });
      progress.stage(
        `  direct batch ${String(batchSize).padStart(2)}: ${itemsPerSecond.toFixed(0)} items/s, ${histogram.summary().p50Ms.toFixed(2)} ms per batch (p50)`,
      );
    }
  } finally {
    await session.release();
  }
  const best = perBatchSize.reduce((a, b) => (b.itemsPerSecond > a.itemsPerSecond ? b : a));
  return {
    model: model.name,
    perBatchSize,
    best: { batchSize: best.batchSize, itemsPerSecond: best.itemsPerSecond },
  };
}
