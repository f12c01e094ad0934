import {
  LATENCY_BUCKETS_MS,
  type LiveStatsReport,
  STATS_SLOT_MS,
  slotOf,
  type VersionSlot,
} from '@inferq/store';
import { describe, expect, it } from 'vitest';
import { buildStatusSnapshot, latencyQuantileMs, type ModelInput } from './status-snapshot.ts';

// A slot boundary, so that the window's first slot starts exactly 55 s before NOW.
const NOW = slotOf(1_700_000_000_000) * STATS_SLOT_MS;
const NOOP: ModelInput = {
  name: 'noop',
  kind: 'model',
  defaultVersion: 1,
  versions: [{ version: 1, state: 'ready', liveWorkers: 2 }],
};

function slot(at: number, fields: Partial<VersionSlot>): VersionSlot {
  return {
    slot: slotOf(at),
    finished: 0,
    failed: 0,
    latency: [],
    batches: 0,
    batchedRequests: 0,
    largestBatch: 0,
    ...fields,
  };
}

function report(id: string, fields: Partial<LiveStatsReport>): LiveStatsReport {
  return { id, startedAt: 0, writtenAt: NOW, versions: {}, cache: {}, ...fields };
}

/** Latency counts with `n` requests in the bucket whose bound is `boundMs`. */
function latencyAt(boundMs: number, n: number): number[] {
  const counts = new Array<number>(LATENCY_BUCKETS_MS.indexOf(boundMs as never) + 1).fill(0);
  counts[counts.length - 1] = n;
  return counts;
}

describe('latencyQuantileMs', () => {
  it('interpolates within the bucket that holds the rank, from 0 below the first bound', () => {
    // Ten requests in (0, 0.25]: the median is halfway.
    expect(latencyQuantileMs(latencyAt(0.25, 10), 0.5)).toBeCloseTo(0.125);
    // 50 in (5, 7.5] and 50 in (7.5, 10]: p50 is the end of the first, p99 near the end of the second.
    const counts = latencyAt(10, 50);
    counts[LATENCY_BUCKETS_MS.indexOf(7.5)] = 50;
    expect(latencyQuantileMs(counts, 0.5)).toBeCloseTo(7.5);
    expect(latencyQuantileMs(counts, 0.99)).toBeCloseTo(7.5 + 2.5 * (49 / 50));
  });

  it('answers the last bound for the overflow bucket and null for no requests', () => {
    const overflow = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
    overflow[LATENCY_BUCKETS_MS.length] = 3;
    expect(latencyQuantileMs(overflow, 0.5)).toBe(60_000);
    expect(latencyQuantileMs([], 0.5)).toBeNull();
    expect(latencyQuantileMs([0, 0], 0.99)).toBeNull();
  });
});

describe('buildStatusSnapshot', () => {
  it('sums every report within the window: counts, latencies, batches, rates and cache lookups', () => {
    const workerA = report('w-a', {
      versions: {
        'noop.v1': [
          // Before the window: left out.
          slot(NOW - 60_000, { finished: 100, batches: 100, batchedRequests: 100, largestBatch: 64 }),
          slot(NOW - 55_000, {
            finished: 30,
            failed: 1,
            latency: latencyAt(1, 30),
            batches: 10,
            batchedRequests: 30,
            largestBatch: 5,
          }),
        ],
      },
    });
    // Up for the last 10 s only: its rate is over those.
    const workerB = report('w-b', {
      startedAt: NOW - 10_000,
      versions: {
        'noop.v1': [
          slot(NOW, {
            finished: 20,
            latency: latencyAt(2, 20),
            batches: 2,
            batchedRequests: 20,
            largestBatch: 12,
          }),
        ],
      },
    });
    const api = report('api:x', {
      cache: {
        noop: [{ slot: slotOf(NOW - 5_000), lookups: 8, hits: 2 }],
        other: [{ slot: slotOf(NOW), lookups: 1, hits: 1 }],
      },
    });
    const snapshot = buildStatusSnapshot({
      now: NOW,
      models: [NOOP],
      liveWorkers: 2,
      queueDepths: new Map([['noop.v1', 7]]),
      reports: [workerA, workerB, api],
    });
    // 30 requests over 55 s and 20 over 10 s.
    const throughput = Math.round((30 / 55 + 20 / 10) * 100) / 100;
    expect(snapshot).toEqual({
      generatedAt: new Date(NOW).toISOString(),
      windowSeconds: 60,
      liveWorkers: 2,
      models: [
        {
          name: 'noop',
          kind: 'model',
          defaultVersion: 1,
          cache: { lookups: 8, hits: 2, hitRatio: 0.25 },
          versions: [
            {
              version: 1,
              state: 'ready',
              liveWorkers: 2,
              queueDepth: 7,
              finished: 50,
              failed: 1,
              throughput,
              // 30 of 50 at most 1 ms (bucket (0.5, 1]), 20 in (1.5, 2].
              latencyMs: { p50: 0.92, p99: 1.99 },
              batches: { count: 12, meanSize: 4.17, largest: 12 },
            },
          ],
        },
      ],
    });
  });

  it('shows a version without figures as zeros and nulls, and an unreadable queue depth as null', () => {
    const snapshot = buildStatusSnapshot({
      now: NOW,
      models: [
        {
          name: 'ocr',
          kind: 'pipeline',
          versions: [
            {
              version: 2,
              state: 'unavailable',
              reason: 'no live worker serves this version',
              liveWorkers: 0,
            },
          ],
        },
      ],
      liveWorkers: 0,
      queueDepths: new Map(),
      reports: [],
    });
    expect(snapshot.models).toEqual([
      {
        name: 'ocr',
        kind: 'pipeline',
        defaultVersion: null,
        cache: { lookups: 0, hits: 0, hitRatio: null },
        versions: [
          {
            version: 2,
            state: 'unavailable',
            reason: 'no live worker serves this version',
            liveWorkers: 0,
            queueDepth: null,
            finished: 0,
            failed: 0,
            throughput: 0,
            latencyMs: { p50: null, p99: null },
            batches: { count: 0, meanSize: null, largest: null },
          },
        ],
      },
    ]);
  });
});
