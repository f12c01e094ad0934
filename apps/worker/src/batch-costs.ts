import { CostModel, type ShapedCosts, warmupBatchSizes } from '@inferq/batcher';
import { type BatchCostProfile, batchShapeOf } from '@inferq/protocol';
import type { ModelVersion } from '@inferq/repository';
import { batchGroupKey, batchRows, type ModelSession } from '@inferq/runtime';

/** A version's cost model, as measured at warm-up, and the group key (shape) it was measured at. */
export interface MeasuredCosts extends ShapedCosts {
  costs: CostModel;
}

/**
 * Timed runs per batch size at warm-up, the fastest counting (the others met a cold cache or a GC):
 * at least MIN_RUNS, and more while they add up to less than MEASURE_MS, so that a sub-millisecond
 * model is timed over enough runs to see past the clock's noise.
 */
const MIN_RUNS = 3;
const MAX_RUNS = 50;
const MEASURE_MS = 10;

/**
 * Times the version's batch at 1, 2, 4 … maxBatchSize rows in the worker's real setting (its session,
 * its placement, its threads), for the batch size policy (docs/design.md, "Batch sizes"). Live runs
 * keep the model current afterwards (BatchRunner).
 */
export async function measureBatchCosts(
  session: ModelSession,
  version: ModelVersion,
): Promise<MeasuredCosts> {
  const { maxBatchSize } = version.config;
  const costs = new CostModel(maxBatchSize);
  // A warm-up sample of several rows is stacked whole: a batch has a multiple of its rows.
  const sample = version.warmupSample?.inputs;
  const sampleRows = sample === undefined ? 1 : batchRows(sample);
  const measured = new Set<number>();
  for (const size of warmupBatchSizes(maxBatchSize)) {
    const rows = Math.max(1, Math.floor(size / sampleRows)) * sampleRows;
    if (measured.has(rows)) continue;
    measured.add(rows);
    let fastest = Number.POSITIVE_INFINITY;
    let spent = 0;
    for (let run = 0; run < MAX_RUNS && (run < MIN_RUNS || spent < MEASURE_MS); run++) {
      const { inferMs } = await session.warmup(sample, rows);
      fastest = Math.min(fastest, inferMs);
      spent += inferMs;
    }
    costs.observe(rows, fastest);
  }
  return { groupKey: warmupGroupKey(version), costs };
}

/**
 * The group key of the warm-up batch: the sample's shape, or the signature's with dynamic dims 1
 * (what `ModelSession.warmup` runs without a sample). Only batches of this key use, and teach, the
 * cost model measured on it.
 */
export function warmupGroupKey(version: ModelVersion): string {
  const { signature, config } = version;
  const names = signature.inputs.map((input) => input.name);
  const sample = version.warmupSample?.inputs;
  const dims =
    sample === undefined
      ? signature.inputs.map((input) => input.shape.slice(1).map((dim) => (dim === -1 ? 1 : dim)))
      : batchShapeOf(sample, signature).dims;
  return batchGroupKey({ rows: 1, dims }, names, config.pad);
}

/** What /v1/models and the fleet view show of a cost model: ms per measured size, overhead, knee and best. */
export function costProfileOf(costs: CostModel): BatchCostProfile {
  return {
    batchSizes: costs.points().map((p) => ({ batchSize: p.batchSize, ms: Math.round(p.ms * 1000) / 1000 })),
    overheadMs: Math.round(costs.overheadMs * 1000) / 1000,
    kneeBatchSize: costs.kneeBatchSize() ?? costs.maxBatchSize,
    bestBatchSize: costs.bestBatchSize() ?? costs.maxBatchSize,
  };
}
