import { loadConfig } from '@inferq/config';
import { createLogger } from '@inferq/observability';
import { type FinishedRequest, type LiveStatsRegistry, type LiveStatsReport, slotOf } from '@inferq/store';
import { describe, expect, it } from 'vitest';
import { WorkerLiveStats } from './live-stats.ts';

const T0 = 1_700_000_000_000;
const logger = createLogger(loadConfig({ LOG_LEVEL: 'silent' }), 'worker');

describe('WorkerLiveStats', () => {
  it("records each version's batches and the requests its scripts ended, and writes them under the worker's id when stopped", async () => {
    const written: LiveStatsReport[] = [];
    const registry = { write: async (report: LiveStatsReport) => void written.push(report) };
    const stats = new WorkerLiveStats({
      registry: registry as unknown as LiveStatsRegistry,
      workerId: 'w-1',
      logger,
      now: () => T0,
    });
    stats.forVersion('noop', 1).ranBatch(2, T0);
    const ended = (model: string, version: number, status: FinishedRequest['status'], extra = {}) => ({
      id: `${model}-${status}`,
      model,
      version,
      status,
      cached: false,
      coalesced: false,
      timings: { queueMs: 0, batchWaitMs: 0, inferMs: 0, totalMs: 40 },
      ...extra,
    });
    stats.requestsEnded(
      [
        ended('noop', 1, 'succeeded'),
        // A follower of the same batch, and a request that failed: each counts once.
        ended('noop', 1, 'succeeded', { coalesced: true }),
        ended('noop', 1, 'failed'),
        ended('ocr', 2, 'succeeded'),
        // A cache hit ran nothing: not a finished request of the worker.
        ended('ocr', 2, 'succeeded', { cached: true }),
      ],
      T0,
    );
    await stats.stop();
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({
      id: 'w-1',
      startedAt: T0,
      versions: {
        'noop.v1': [
          { slot: slotOf(T0), finished: 3, failed: 1, batches: 1, batchedRequests: 2, largestBatch: 2 },
        ],
        'ocr.v2': [{ slot: slotOf(T0), finished: 1, failed: 0, batches: 0 }],
      },
    });
    // Stopping again with nothing new writes nothing.
    await stats.stop();
    expect(written).toHaveLength(1);
  });
});
