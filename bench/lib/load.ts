import { performance } from 'node:perf_hooks';
import { LatencyHistogram, type LatencySummary } from './latency.ts';
import { firstNotDue } from './schedule.ts';

/** What one request came to. `inferMs` is the model time the server reported, when it did. */
export interface Outcome {
  ok: boolean;
  /** Short reason when not ok (`HTTP 503`, `timeout`, ...): failures are counted by reason. */
  error?: string;
  inferMs?: number;
}

/** Sends request number `index` (numbers are unique within one load run). */
export type Send = (index: number) => Promise<Outcome>;

export interface LoadResult {
  sent: number;
  ok: number;
  failed: number;
  /** Failures by reason. */
  errors: Record<string, number>;
  /** From the start of the run to the last answer. */
  elapsedMs: number;
  /** Successful answers per second over `elapsedMs`. */
  throughputPerSecond: number;
  /** Open loop: from each request's scheduled send time; closed loop: from its actual send. */
  latency: LatencySummary;
  /** Mean of the server-reported model time over the answers that carried one. */
  meanInferMs: number | undefined;
}

/** Receives a one-line account of a run in progress (about four times a second). */
export type ProgressSink = (line: string) => void;

const PROGRESS_INTERVAL_MS = 250;

class Tally {
  readonly latency = new LatencyHistogram();
  sent = 0;
  ok = 0;
  failed = 0;
  readonly errors = new Map<string, number>();
  private inferSum = 0;
  private inferCount = 0;

  fail(reason: string): void {
    this.failed++;
    this.errors.set(reason, (this.errors.get(reason) ?? 0) + 1);
  }

  settle(outcome: Outcome, latencyMs: number): void {
    if (!outcome.ok) {
      this.fail(outcome.error ?? 'failed');
      return;
    }
    this.ok++;
    this.latency.record(latencyMs);
    if (outcome.inferMs !== undefined) {
      this.inferSum += outcome.inferMs;
      this.inferCount++;
    }
  }

  result(elapsedMs: number): LoadResult {
    return {
      sent: this.sent,
      ok: this.ok,
      failed: this.failed,
      errors: Object.fromEntries(this.errors),
      elapsedMs,
      throughputPerSecond: elapsedMs > 0 ? (this.ok * 1000) / elapsedMs : 0,
      latency: this.latency.summary(),
      meanInferMs: this.inferCount > 0 ? this.inferSum / this.inferCount : undefined,
    };
  }
}

function describeError(error: unknown): string {
  if (error instanceof Error) return (error as NodeJS.ErrnoException).code ?? error.name;
  return String(error);
}

export interface OpenLoopOptions {
  /** Send offsets in ms from the start, ascending (see `poissonSchedule`). */
  schedule: Float64Array;
  send: Send;
  /** How long to wait, after the last send, for answers still outstanding; they then count as `timeout`. */
  drainTimeoutMs: number;
  progress?: ProgressSink;
}

/**
 * Open-loop load: request i leaves at its scheduled instant whether or not earlier ones have been
 * answered, and its latency runs from that scheduled instant, not from when it actually left. A
 * dispatcher that wakes late (a busy event loop, a coarse timer) sends everything due at once and
 * the delay shows in the latencies, instead of silently lowering the offered load (no coordinated
 * omission).
 */
export function runOpenLoop(options: OpenLoopOptions): Promise<LoadResult> {
  const { schedule, send, drainTimeoutMs, progress } = options;
  const tally = new Tally();
  const start = performance.now();
  let next = 0;
  let inFlight = 0;
  let lastAnswer = start;

  return new Promise((resolve) => {
    let finished = false;
    let drainTimer: NodeJS.Timeout | undefined;
    const progressTimer = setInterval(() => {
      progress?.(`${tally.sent}/${schedule.length} sent, ${tally.ok} ok, ${tally.failed} failed`);
    }, PROGRESS_INTERVAL_MS);

    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearInterval(progressTimer);
      clearTimeout(drainTimer);
      for (let i = 0; i < inFlight; i++) tally.fail('timeout');
      resolve(tally.result(lastAnswer - start));
    };

    const fire = (index: number): void => {
      const scheduledAt = start + (schedule[index] as number);
      tally.sent++;
      inFlight++;
      const settle = (outcome: Outcome): void => {
        if (finished) return;
        const now = performance.now();
        inFlight--;
        lastAnswer = now;
        tally.settle(outcome, now - scheduledAt);
        if (next === schedule.length && inFlight === 0) finish();
      };
      send(index).then(settle, (error: unknown) => settle({ ok: false, error: describeError(error) }));
    };

    const tick = (): void => {
      const due = firstNotDue(schedule, next, performance.now() - start);
      while (next < due) fire(next++);
      if (next < schedule.length) {
        setTimeout(tick, Math.max(0, (schedule[next] as number) - (performance.now() - start)));
      } else if (inFlight === 0) {
        finish();
      } else {
        drainTimer = setTimeout(finish, drainTimeoutMs);
      }
    };
    tick();
  });
}

export interface ClosedLoopOptions {
  /** Clients; each sends its next request as soon as its previous one is answered. */
  concurrency: number;
  durationMs: number;
  /** Stop sending after this many requests, if that comes before the duration is over. */
  requests?: number;
  send: Send;
  progress?: ProgressSink;
}

/**
 * Closed-loop load for saturation throughput: `concurrency` clients each keep exactly one request
 * outstanding until the duration is over (or `requests` have been sent). Latencies run from each request's actual send (in a
 * closed loop the offered load adapts to the server, so these are not latencies under a given load).
 */
export async function runClosedLoop(options: ClosedLoopOptions): Promise<LoadResult> {
  const { concurrency, durationMs, send, progress } = options;
  const limit = options.requests ?? Number.POSITIVE_INFINITY;
  const tally = new Tally();
  const start = performance.now();
  const end = start + durationMs;
  let lastAnswer = start;
  let nextIndex = 0;
  const progressTimer = setInterval(() => {
    const seconds = (performance.now() - start) / 1000;
    progress?.(
      `${seconds.toFixed(1)} s, ${tally.ok} ok (${(tally.ok / seconds).toFixed(0)}/s), ${tally.failed} failed`,
    );
  }, PROGRESS_INTERVAL_MS);

  const client = async (): Promise<void> => {
    while (performance.now() < end && nextIndex < limit) {
      const index = nextIndex++;
      tally.sent++;
      const sentAt = performance.now();
      let outcome: Outcome;
      try {
        outcome = await send(index);
      } catch (error: unknown) {
        outcome = { ok: false, error: describeError(error) };
      }
      lastAnswer = performance.now();
      tally.settle(outcome, lastAnswer - sentAt);
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, client));
  } finally {
    clearInterval(progressTimer);
  }
  return tally.result(lastAnswer - start);
}
