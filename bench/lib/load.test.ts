import { describe, expect, it } from 'vitest';
import { type Outcome, runClosedLoop, runOpenLoop } from './load.ts';

// These tests check what the runners count, never how long anything took.

describe('runOpenLoop', () => {
  it('sends every scheduled request once and tallies outcomes by reason', async () => {
    const schedule = Float64Array.from({ length: 20 }, (_, i) => i * 0.5);
    const sentIndexes: number[] = [];
    const result = await runOpenLoop({
      schedule,
      drainTimeoutMs: 5_000,
      send: async (index): Promise<Outcome> => {
        sentIndexes.push(index);
        if (index % 5 === 0) return { ok: false, error: 'HTTP 503' };
        if (index === 7) throw Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
        return { ok: true, inferMs: 2 };
      },
    });
    expect(sentIndexes.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(result.sent).toBe(20);
    expect(result.ok).toBe(15);
    expect(result.failed).toBe(5);
    expect(result.errors).toEqual({ 'HTTP 503': 4, ECONNREFUSED: 1 });
    expect(result.latency.count).toBe(15);
    expect(result.meanInferMs).toBe(2);
  });

  it('counts requests still unanswered after the drain timeout as timeouts', async () => {
    const result = await runOpenLoop({
      schedule: Float64Array.from([0, 1, 2]),
      drainTimeoutMs: 10,
      send: (index) => (index === 1 ? new Promise<Outcome>(() => {}) : Promise.resolve({ ok: true })),
    });
    expect(result.ok).toBe(2);
    expect(result.errors).toEqual({ timeout: 1 });
  });

  it('finishes at once on an empty schedule', async () => {
    const result = await runOpenLoop({
      schedule: new Float64Array(0),
      drainTimeoutMs: 10,
      send: async () => ({ ok: true }),
    });
    expect(result.sent).toBe(0);
    expect(result.throughputPerSecond).toBe(0);
  });
});

describe('runClosedLoop', () => {
  it('keeps at most `concurrency` requests outstanding and numbers them uniquely', async () => {
    let outstanding = 0;
    let most = 0;
    const indexes = new Set<number>();
    const result = await runClosedLoop({
      concurrency: 3,
      durationMs: 30,
      send: async (index) => {
        indexes.add(index);
        outstanding++;
        most = Math.max(most, outstanding);
        await new Promise((resolve) => setImmediate(resolve));
        outstanding--;
        return { ok: true };
      },
    });
    expect(most).toBe(3);
    expect(indexes.size).toBe(result.sent);
    expect(result.ok).toBe(result.sent);
    expect(result.failed).toBe(0);
  });

  it('stops after `requests` when they come before the duration is over', async () => {
    const indexes: number[] = [];
    const result = await runClosedLoop({
      concurrency: 2,
      durationMs: 60_000,
      requests: 7,
      send: async (index) => {
        indexes.push(index);
        await new Promise((resolve) => setImmediate(resolve));
        return index === 3 ? { ok: false, error: 'wrong text' } : { ok: true };
      },
    });
    expect(indexes.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(result.sent).toBe(7);
    expect(result.ok).toBe(6);
    expect(result.errors).toEqual({ 'wrong text': 1 });
  });
});
