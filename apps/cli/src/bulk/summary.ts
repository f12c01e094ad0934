/** The counts of a `inferq submit --bulk` run, its summary and its exit code. */
import type { ResultStatus } from './results-file.ts';

/** Counts inputs as they are skipped (done by an earlier run) or finish in this one. */
export class BulkTally {
  succeeded = 0;
  failed = 0;
  skipped = 0;
  /** Of the skipped inputs, those whose earlier result was not a success. */
  skippedFailed = 0;

  constructor(readonly total: number) {}

  skip(status: ResultStatus): void {
    this.skipped += 1;
    if (status !== 'succeeded') this.skippedFailed += 1;
  }

  finish(status: ResultStatus): void {
    if (status === 'succeeded') this.succeeded += 1;
    else this.failed += 1;
  }

  /** Inputs with a final result, from this run or an earlier one. */
  get done(): number {
    return this.succeeded + this.failed + this.skipped;
  }
}

export interface BulkSummary {
  total: number;
  succeeded: number;
  /** Finished in this run without success: failed, cancelled, expired, rejected or invalid. */
  failed: number;
  /** Already in the results file from an earlier run (`skippedFailed` of them without success). */
  skipped: number;
  skippedFailed: number;
  /** Neither finished nor skipped: interrupted, timed out or refused until the retries ran out. */
  unfinished: number;
  elapsedSeconds: number;
  /** Inputs this run finished per second. */
  perSecond: number;
  out: string;
  interrupted: boolean;
  /** Why the run stopped early, when something other than SIGINT stopped it. */
  error?: string;
}

export function bulkSummary(
  tally: BulkTally,
  elapsedMs: number,
  run: { out: string; interrupted: boolean; error?: string },
): BulkSummary {
  const finished = tally.succeeded + tally.failed;
  const elapsedSeconds = Math.round(elapsedMs) / 1000;
  const summary: BulkSummary = {
    total: tally.total,
    succeeded: tally.succeeded,
    failed: tally.failed,
    skipped: tally.skipped,
    skippedFailed: tally.skippedFailed,
    unfinished: tally.total - tally.done,
    elapsedSeconds,
    perSecond: elapsedMs > 0 ? Math.round((finished / elapsedMs) * 1000 * 10) / 10 : 0,
    out: run.out,
    interrupted: run.interrupted,
  };
  if (run.error !== undefined) summary.error = run.error;
  return summary;
}

/**
 * 130 when SIGINT stopped the run (as a shell reports a job it interrupted); 0 when every input
 * has succeeded, in this run or an earlier one; 1 otherwise.
 */
export function bulkExitCode(summary: BulkSummary): number {
  if (summary.interrupted) return 130;
  return summary.succeeded + summary.skipped - summary.skippedFailed === summary.total ? 0 : 1;
}

/** The summary as one line for a person. */
export function formatSummary(summary: BulkSummary): string {
  const skipped =
    summary.skippedFailed > 0
      ? `${summary.skipped} skipped (done earlier, ${summary.skippedFailed} of them unsuccessful)`
      : `${summary.skipped} skipped (done earlier)`;
  const counts = [
    `${summary.succeeded} succeeded`,
    `${summary.failed} failed`,
    skipped,
    `${summary.unfinished} unfinished`,
  ].join(', ');
  const stopped = summary.interrupted ? 'interrupted: ' : summary.error !== undefined ? 'stopped: ' : '';
  // After an error this run could not get past, the error says what to fix first.
  const resume =
    summary.unfinished > 0 && summary.error === undefined ? '; run the same command again to resume' : '';
  return (
    `${stopped}${summary.total} input${summary.total === 1 ? '' : 's'}: ${counts} in ${summary.elapsedSeconds.toFixed(1)} s ` +
    `(${summary.perSecond}/s); results in ${summary.out}${resume}`
  );
}
