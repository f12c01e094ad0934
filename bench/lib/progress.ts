import { performance } from 'node:perf_hooks';

/**
 * Progress on stderr (stdout carries only the results table): one line per stage, prefixed with the
 * time since the run began, and on a terminal a live line that is rewritten in place.
 */
export class Progress {
  private readonly started = performance.now();
  private readonly live = process.stderr.isTTY === true;
  private liveShown = false;

  private elapsed(): string {
    return `${((performance.now() - this.started) / 1000).toFixed(1).padStart(6)} s`;
  }

  private clearLive(): void {
    if (this.liveShown) process.stderr.write('\r\x1b[2K');
    this.liveShown = false;
  }

  /** A stage begins or ends: always printed, on its own line. */
  stage(text: string): void {
    this.clearLive();
    process.stderr.write(`[bench ${this.elapsed()}] ${text}\n`);
  }

  /** Detail of the stage in progress: shown in place on a terminal, dropped otherwise. */
  update(text: string): void {
    if (!this.live) return;
    const width = process.stderr.columns ?? 120;
    process.stderr.write(`\r\x1b[2K  … ${text}`.slice(0, width + 5));
    this.liveShown = true;
  }

  get seconds(): number {
    return (performance.now() - this.started) / 1000;
  }
}
