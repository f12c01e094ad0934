import { loadConfig } from '@inferq/config';
import { createLogger, createMetrics } from '@inferq/observability';
import { type LiveStatsRegistry, type LiveStatsReport, slotOf } from '@inferq/store';
import { describe, expect, it } from 'vitest';
import { ApiCacheStats } from './cache-stats.ts';

const T0 = 1_700_000_000_000;
const logger = createLogger(loadConfig({ LOG_LEVEL: 'silent' }), 'api');

/** A registry that keeps what it is given; `fail` makes the next write throw. */
function memoryRegistry(): { registry: LiveStatsRegistry; written: LiveStatsReport[]; fail: boolean } {
  const state = {
    written: [] as LiveStatsReport[],
    fail: false,
    registry: undefined as unknown as LiveStatsRegistry,
  };
  state.registry = {
    write: async (report: LiveStatsReport) => {
      if (state.fail) {
        state.fail = false;
        throw new Error('Redis is away');
      }
      state.written.push(structuredClone(report));
    },
  } as unknown as LiveStatsRegistry;
  return state;
}

describe('ApiCacheStats', () => {
  it("counts what the API's cache counters moved by since the last flush, per model, and writes only then", async () => {
    const metrics = createMetrics('api');
    const store = memoryRegistry();
    let now = T0;
    const stats = new ApiCacheStats({ metrics, registry: store.registry, logger, now: () => now });
    await stats.flush();
    expect(store.written).toEqual([]);

    metrics.cacheMisses.inc({ model: 'noop' }, 6);
    metrics.cacheHits.inc({ model: 'noop' }, 3);
    metrics.cacheMisses.inc({ model: 'ocr' });
    await stats.flush();
    expect(store.written).toEqual([
      {
        id: stats.id,
        startedAt: T0,
        writtenAt: T0,
        versions: {},
        cache: {
          noop: [{ slot: slotOf(T0), lookups: 9, hits: 3 }],
          ocr: [{ slot: slotOf(T0), lookups: 1, hits: 0 }],
        },
      },
    ]);
    expect(stats.id).toMatch(/^api:\d+-[A-Za-z0-9_-]{8}$/);

    // Nothing moved: nothing written.
    now += 2_000;
    await stats.flush();
    expect(store.written).toHaveLength(1);

    // A failed write is tried again at the next flush, with what came since.
    metrics.cacheHits.inc({ model: 'noop' });
    store.fail = true;
    await stats.flush();
    expect(store.written).toHaveLength(1);
    now += 2_000;
    await stats.flush();
    expect(store.written.at(-1)?.cache.noop).toEqual([{ slot: slotOf(T0), lookups: 10, hits: 4 }]);
  });
});
