export type WaitOutcome = 'woken' | 'timeout' | 'aborted';

/**
 * A reusable wake-up call between a pub/sub listener and the request handler waiting on it. A wake
 * that comes before anyone waits is remembered, so a notification arriving between "subscribe" and
 * "wait" is never lost.
 */
export class Wakeup {
  private pending = false;
  private resolveWaiter: (() => void) | undefined;

  wake(): void {
    this.pending = true;
    this.resolveWaiter?.();
  }

  /** Waits for `wake()`, at most `ms`, or until one of `signals` aborts; consumes a pending wake. */
  wait(ms: number, signals: AbortSignal | readonly (AbortSignal | undefined)[] = []): Promise<WaitOutcome> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve('woken');
    }
    const watched = (Array.isArray(signals) ? signals : [signals]).filter(
      (signal): signal is AbortSignal => signal !== undefined,
    );
    if (watched.some((signal) => signal.aborted)) return Promise.resolve('aborted');
    return new Promise((resolve) => {
      const finish = (outcome: WaitOutcome): void => {
        clearTimeout(timer);
        for (const signal of watched) signal.removeEventListener('abort', onAbort);
        this.resolveWaiter = undefined;
        if (outcome === 'woken') this.pending = false;
        resolve(outcome);
      };
      const onAbort = (): void => finish('aborted');
      const timer = setTimeout(() => finish('timeout'), Math.max(0, ms));
      for (const signal of watched) signal.addEventListener('abort', onAbort, { once: true });
      this.resolveWaiter = () => finish('woken');
    });
  }
}
