import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.ts';
import { logFinishedRequests, REQUEST_FINISHED } from './request-log.ts';
import { startTracing } from './tracing.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';

/** A logger at `level` whose lines are parsed into `lines`. */
function capture(level: 'info' | 'warn'): {
  logger: ReturnType<typeof createLogger>;
  lines: Record<string, unknown>[];
} {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger({ logLevel: level }, 'worker', destination), lines };
}

describe('logFinishedRequests', () => {
  it('writes one info line per request: id, model, version, status, flags, timings, trace id', () => {
    const { logger, lines } = capture('info');
    logFinishedRequests(logger, [
      {
        id: 'r1',
        model: 'm',
        version: 2,
        status: 'succeeded',
        cached: false,
        coalesced: true,
        timings: { queueMs: 3, batchWaitMs: 1, inferMs: 2, totalMs: 6 },
        batchSize: 4,
        trace: `00-${TRACE_ID}-00f067aa0ba902b7-01 vendor=1`,
      },
      {
        id: 'r2',
        model: 'm',
        version: 2,
        status: 'failed',
        cached: false,
        coalesced: false,
        timings: { queueMs: 0, batchWaitMs: 0, inferMs: 0, totalMs: 9 },
        errorCode: 'inference_failed',
      },
    ]);
    expect(lines.map(({ time: _time, ...rest }) => rest)).toEqual([
      {
        level: 30,
        service: 'worker',
        msg: REQUEST_FINISHED,
        id: 'r1',
        model: 'm',
        version: 2,
        status: 'succeeded',
        cached: false,
        coalesced: true,
        queueMs: 3,
        batchWaitMs: 1,
        inferMs: 2,
        totalMs: 6,
        batchSize: 4,
        traceId: TRACE_ID,
      },
      {
        level: 30,
        service: 'worker',
        msg: REQUEST_FINISHED,
        id: 'r2',
        model: 'm',
        version: 2,
        status: 'failed',
        cached: false,
        coalesced: false,
        queueMs: 0,
        batchWaitMs: 0,
        inferMs: 0,
        totalMs: 9,
        error: 'inference_failed',
      },
    ]);
  });

  it('writes nothing below info', () => {
    const { logger, lines } = capture('warn');
    logFinishedRequests(logger, [
      {
        id: 'r1',
        model: 'm',
        version: 1,
        status: 'expired',
        cached: false,
        coalesced: false,
        timings: { queueMs: 5, batchWaitMs: 0, inferMs: 0, totalMs: 5 },
      },
    ]);
    expect(lines).toEqual([]);
  });
});

describe('startTracing', () => {
  it('is off (undefined) without an OTLP endpoint', async () => {
    expect(await startTracing(undefined, 'inferq-api', capture('info').logger)).toBeUndefined();
  });
});
