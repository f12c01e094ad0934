/**
 * Progress of a bulk run on stderr: a live bar (done, rate, ETA) when stderr is a terminal; when it
 * is a file or a pipe (CI logs), a plain line every PLAIN_INTERVAL_MS instead of redraws.
 */
import cliProgress from 'cli-progress';
import type { BulkTally } from './summary.ts';

export interface BulkProgress {
  /** The tally changed: redraw (the bar), or let the next plain line tell. */
  update(): void;
  /** A short note shown beside the bar (a retry, a stop), or printed once as a plain line. */
  note(text: string): void;
  stop(): void;
}

const PLAIN_INTERVAL_MS = 30_000;

function perSecond(tally: BulkTally, startedAt: number): number {
  const seconds = (Date.now() - startedAt) / 1000;
  return seconds > 0 ? (tally.succeeded + tally.failed) / seconds : 0;
}

/** Time left for the inputs still to do, at this run's rate so far. */
function etaText(tally: BulkTally, rate: number): string {
  const left = tally.total - tally.done;
  if (left === 0) return '0s';
  if (rate <= 0) return '?';
  const seconds = Math.ceil(left / rate);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  return minutes < 60 ? `${minutes}m${seconds % 60}s` : `${Math.floor(minutes / 60)}h${minutes % 60}m`;
}

export function createProgress(
  stream: NodeJS.WriteStream,
  label: string,
  tally: BulkTally,
  startedAt: number,
): BulkProgress {
  if (stream.isTTY !== true) return plainProgress(stream, label, tally, startedAt);
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: `${label} {bar} {value}/{total} | {rate}/s | ETA {etaText} | {failed} failed{note}`,
      hideCursor: true,
      barsize: 30,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  );
  let note = '';
  const payload = () => {
    const rate = perSecond(tally, startedAt);
    return {
      rate: rate.toFixed(1),
      etaText: etaText(tally, rate),
      failed: tally.failed,
      note: note === '' ? '' : ` | ${note}`,
    };
  };
  bar.start(tally.total, tally.done, payload());
  // The rate and ETA move while no result comes in, too.
  const timer = setInterval(() => bar.update(tally.done, payload()), 1000);
  timer.unref();
  return {
    update: () => bar.update(tally.done, payload()),
    note: (text) => {
      note = text;
      bar.update(tally.done, payload());
    },
    stop: () => {
      clearInterval(timer);
      bar.update(tally.done, payload());
      bar.stop();
    },
  };
}

function plainProgress(
  stream: NodeJS.WriteStream,
  label: string,
  tally: BulkTally,
  startedAt: number,
): BulkProgress {
  const timer = setInterval(() => {
    const rate = perSecond(tally, startedAt);
    stream.write(
      `${label}: ${tally.done}/${tally.total} done, ${rate.toFixed(1)}/s, ETA ${etaText(tally, rate)}, ${tally.failed} failed\n`,
    );
  }, PLAIN_INTERVAL_MS);
  timer.unref();
  return {
    update: () => {},
    note: (text) => {
      if (text !== '') stream.write(`${label}: ${text}\n`);
    },
    stop: () => clearInterval(timer),
  };
}
