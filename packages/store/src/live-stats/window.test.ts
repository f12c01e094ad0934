import { describe, expect, it } from 'vitest';
import {
  firstSlotOfWindow,
  LATENCY_BUCKETS_MS,
  LiveStatsWindow,
  latencyBucketOf,
  STATS_SLOT_MS,
  STATS_WINDOW_SLOTS,
  slotOf,
} from './window.ts';

const T0 = 1_700_000_000_000;

describe('latencyBucketOf', () => {
  it('puts a latency in the first bucket whose bound is at least it, and above every bound in the last', () => {
    expect(latencyBucketOf(0)).toBe(0);
    expect(latencyBucketOf(0.25)).toBe(0);
    expect(latencyBucketOf(0.26)).toBe(1);
    expect(latencyBucketOf(100)).toBe(LATENCY_BUCKETS_MS.indexOf(100));
    expect(latencyBucketOf(101)).toBe(LATENCY_BUCKETS_MS.indexOf(150));
    expect(latencyBucketOf(60_001)).toBe(LATENCY_BUCKETS_MS.length);
  });
});

describe('LiveStatsWindow', () => {
  it('counts finished requests, failures, latencies and batches per version and slot', () => {
    const window = new LiveStatsWindow(T0);
    expect(window.dirty).toBe(false);
    window.batch('noop.v1', 3, T0);
    window.finished('noop.v1', 0.4, false, T0);
    window.finished('noop.v1', 0.5, false, T0);
    window.finished('noop.v1', 3, true, T0);
    window.batch('noop.v1', 1, T0 + STATS_SLOT_MS);
    window.finished('noop.v1', 12, false, T0 + STATS_SLOT_MS);
    expect(window.dirty).toBe(true);
    const report = window.report('w1', T0 + STATS_SLOT_MS);
    expect(window.dirty).toBe(false);
    expect(report).toEqual({
      id: 'w1',
      startedAt: T0,
      writtenAt: T0 + STATS_SLOT_MS,
      cache: {},
      versions: {
        'noop.v1': [
          {
            slot: slotOf(T0),
            finished: 3,
            failed: 1,
            latency: [0, 2, 0, 0, 0, 1],
            batches: 1,
            batchedRequests: 3,
            largestBatch: 3,
          },
          {
            slot: slotOf(T0) + 1,
            finished: 1,
            failed: 0,
            latency: [0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            batches: 1,
            batchedRequests: 1,
            largestBatch: 1,
          },
        ],
      },
    });
  });

  it('counts cache lookups and hits per model, and ignores a flush that looked up nothing', () => {
    const window = new LiveStatsWindow(T0);
    window.cacheLookups('noop', 0, 0, T0);
    expect(window.dirty).toBe(false);
    window.cacheLookups('noop', 4, 1, T0);
    window.cacheLookups('noop', 2, 2, T0 + 1);
    expect(window.report('api:a', T0 + 1).cache).toEqual({
      noop: [{ slot: slotOf(T0), lookups: 6, hits: 3 }],
    });
  });

  it('forgets slots that left the window, and versions left with none', () => {
    const window = new LiveStatsWindow(T0);
    window.finished('old.v1', 1, false, T0);
    window.finished('noop.v1', 1, false, T0);
    const later = T0 + STATS_WINDOW_SLOTS * STATS_SLOT_MS;
    window.finished('noop.v1', 1, false, later);
    const report = window.report('w1', later);
    expect(firstSlotOfWindow(later)).toBeGreaterThan(slotOf(T0));
    expect(Object.keys(report.versions)).toEqual(['noop.v1']);
    expect(report.versions['noop.v1']!.map((s) => s.slot)).toEqual([slotOf(later)]);
  });

  it('keeps counting into the newest slot when the clock steps back', () => {
    const window = new LiveStatsWindow(T0);
    window.finished('noop.v1', 1, false, T0 + STATS_SLOT_MS);
    window.finished('noop.v1', 1, false, T0);
    const slots = window.report('w1', T0 + STATS_SLOT_MS).versions['noop.v1']!;
    expect(slots.map((s) => [s.slot, s.finished])).toEqual([[slotOf(T0) + 1, 2]]);
  });
});
