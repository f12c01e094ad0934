import { loadConfig } from '@inferq/config';
import { createLogger } from '@inferq/observability';
import { type LiveStatsRegistry, type LiveStatsReport, slotOf } from '@inferq/store';
import { describe, expect, it } from 'vitest';
import { WorkerLiveStats } from './live-stats.ts';

const T0 = 1_700_000_000_000;
const logger = createLogger(loadConfig({ LOG_LEVEL: 'silent' }), 'worker');

describe('WorkerLiveStats', () => {
  it("records each version's batches and finished requests, and writes them under the worker's id when stopped", async () => {
    const written: LiveStatsReport[] = [];
    const registry = { write: async (report: LiveStatsReport) => void written.push(report) };
    const stats = new WorkerLiveStats({
      registry: registry as unknown as LiveStatsRegistry,
      workerId: 'w-1',
      logger,
      now: () => T0,
    });
    const noop = stats.forVersion('noop', 1);
    noop.ranBatch(
      2,
      [
        { status: 'succeeded', createdAt: T0 - 1 },
        { status: 'failed', createdAt: T0 - 40 },
      ],
      T0,
    );
    stats.forVersion('ocr', 2).finished(T0 - 900, false, T0);
    await stats.stop();
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({
      id: 'w-1',
      startedAt: T0,
      versions: {
        'noop.v1': [
          { slot: slotOf(T0), finished: 2, failed: 1, batches: 1, batchedRequests: 2, largestBatch: 2 },
        ],
        'ocr.v2': [{ slot: slotOf(T0), finished: 1, failed: 0, batches: 0 }],
      },
    });
    // Stopping again with nothing new writes nothing.
    await stats.stop();
    expect(written).toHaveLength(1);
  });
});
