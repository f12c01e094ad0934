import { describe, expect, it } from 'vitest';
import { Wakeup } from './wakeup.ts';

describe('Wakeup', () => {
  it('remembers a wake that came before the wait', async () => {
    const wakeup = new Wakeup();
    wakeup.wake();
    expect(await wakeup.wait(60_000)).toBe('woken');
  });

  it('wakes a waiter, and each wake is consumed once', async () => {
    const wakeup = new Wakeup();
    const waiting = wakeup.wait(60_000);
    wakeup.wake();
    expect(await waiting).toBe('woken');
    expect(await wakeup.wait(0)).toBe('timeout');
  });

  it('gives up after the timeout', async () => {
    expect(await new Wakeup().wait(1)).toBe('timeout');
  });

  it('stops waiting when the signal aborts, or at once if it already did', async () => {
    const controller = new AbortController();
    const wakeup = new Wakeup();
    const waiting = wakeup.wait(60_000, controller.signal);
    controller.abort();
    expect(await waiting).toBe('aborted');
    expect(await wakeup.wait(60_000, controller.signal)).toBe('aborted');
  });
});
