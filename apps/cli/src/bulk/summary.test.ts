import { describe, expect, it } from 'vitest';
import { BulkTally, bulkExitCode, bulkSummary, formatSummary } from './summary.ts';

function tallyOf(total: number, finished: string[], skipped: string[]): BulkTally {
  const tally = new BulkTally(total);
  for (const status of skipped) tally.skip(status as 'succeeded');
  for (const status of finished) tally.finish(status as 'succeeded');
  return tally;
}

describe('bulkSummary', () => {
  it('counts this run, the skipped inputs and what is left, with the rate of this run', () => {
    const tally = tallyOf(
      10,
      ['succeeded', 'succeeded', 'failed', 'rejected', 'invalid'],
      ['succeeded', 'expired'],
    );
    expect(tally.done).toBe(7);
    expect(bulkSummary(tally, 2_000, { out: 'r.ndjson', interrupted: false })).toEqual({
      total: 10,
      succeeded: 2,
      failed: 3,
      skipped: 2,
      skippedFailed: 1,
      unfinished: 3,
      elapsedSeconds: 2,
      perSecond: 2.5,
      out: 'r.ndjson',
      interrupted: false,
    });
  });

  it('carries why a run stopped', () => {
    const summary = bulkSummary(tallyOf(1, [], []), 0, { out: 'o', interrupted: false, error: 'HTTP 401' });
    expect(summary).toMatchObject({ error: 'HTTP 401', perSecond: 0, unfinished: 1 });
  });
});

describe('bulkExitCode', () => {
  const summarize = (tally: BulkTally, interrupted = false) =>
    bulkSummary(tally, 1_000, { out: 'o', interrupted });

  it('is 0 only when every input succeeded, in this run or an earlier one', () => {
    expect(bulkExitCode(summarize(tallyOf(3, ['succeeded'], ['succeeded', 'succeeded'])))).toBe(0);
    expect(bulkExitCode(summarize(tallyOf(0, [], [])))).toBe(0);
    expect(bulkExitCode(summarize(tallyOf(3, ['succeeded', 'failed'], ['succeeded'])))).toBe(1);
    expect(bulkExitCode(summarize(tallyOf(3, ['succeeded', 'succeeded'], ['rejected'])))).toBe(1);
    expect(bulkExitCode(summarize(tallyOf(3, ['succeeded', 'succeeded'], [])))).toBe(1);
  });

  it('is 130 when SIGINT stopped the run', () => {
    expect(bulkExitCode(summarize(tallyOf(3, ['succeeded'], []), true))).toBe(130);
  });
});

describe('formatSummary', () => {
  it('says every count, the time, the rate, where the results are, and how to resume', () => {
    const tally = tallyOf(10, ['succeeded', 'succeeded', 'failed'], ['succeeded', 'failed']);
    expect(formatSummary(bulkSummary(tally, 1_500, { out: 'r.ndjson', interrupted: true }))).toBe(
      'interrupted: 10 inputs: 2 succeeded, 1 failed, 2 skipped (done earlier, 1 of them unsuccessful), ' +
        '5 unfinished in 1.5 s (2/s); results in r.ndjson; run the same command again to resume',
    );
    const stopped = bulkSummary(tallyOf(2, [], []), 0, { out: 'r', interrupted: false, error: 'HTTP 404' });
    expect(formatSummary(stopped)).toBe(
      'stopped: 2 inputs: 0 succeeded, 0 failed, 0 skipped (done earlier), 2 unfinished in 0.0 s (0/s); results in r',
    );
    expect(
      formatSummary(bulkSummary(tallyOf(1, ['succeeded'], []), 500, { out: 'r', interrupted: false })),
    ).toBe(
      '1 input: 1 succeeded, 0 failed, 0 skipped (done earlier), 0 unfinished in 0.5 s (2/s); results in r',
    );
  });
});
