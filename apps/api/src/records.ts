/**
 * One request after its submission, for its tenant: read it, long-poll for its end, follow its status
 * changes, cancel it; and the subscriptions a `Prefer: wait` submit waits on. Pub/sub is only a
 * wake-up here: the record is always the answer.
 */
import type { Config } from '@inferq/config';
import type { Logger } from '@inferq/observability';
import {
  type CompletionMessage,
  ConflictError,
  NotFoundError,
  type RequestRecord,
  type RequestStatus,
  TERMINAL_STATUSES,
} from '@inferq/protocol';
import type { CompletionHead, CompletionWatcher, RequestStore, StoredRecord } from '@inferq/store';
import { Wakeup } from './wakeup.ts';

export interface RequestRecordsDeps {
  config: Pick<Config, 'maxWaitSeconds'>;
  store: RequestStore;
  watcher: CompletionWatcher;
  logger: Logger;
  /** Aborted when the process stops: waits answer at once with the state they have. */
  shutdownSignal?: AbortSignal;
  now?: () => number;
  /**
   * How often a waiter (status stream, long-poll, `Prefer: wait`) re-reads the record, in case a
   * pub/sub message was lost or the record itself is gone.
   */
  recheckIntervalMs?: number;
}

export interface TerminalSubscription {
  live: Promise<() => Promise<void>>;
  wakeup: Wakeup;
  /** The terminal completion message, once one arrived. */
  completion(): Announcement | undefined;
  release(): void;
}

/** A request's end as a waiter heard of it. */
export interface Announcement {
  head: CompletionHead;
  /** The message's bytes, as this process's notify channel delivers it (outputs undecoded). */
  message?: Buffer;
  /** The whole message, as a per-request subscription delivers it. */
  decoded?: CompletionMessage;
}

/** One event of a status stream: each status change, then the terminal one with the full record. */
export type StatusEvent =
  | { kind: 'status'; id: string; status: RequestStatus }
  | { kind: 'terminal'; record: RequestRecord };

const DEFAULT_RECHECK_INTERVAL_MS = 15_000;
/** How long after a queued request's deadline its waiters look again (see untilDeadline). */
const DEADLINE_SLACK_MS = 5;

export class RequestRecords {
  private readonly deps: RequestRecordsDeps;
  private readonly now: () => number;

  constructor(deps: RequestRecordsDeps) {
    this.deps = deps;
    this.now = deps.now ?? Date.now;
  }

  /** The record of one of the tenant's requests; with `waitSeconds`, long-polls for a terminal state. */
  async getRecord(id: string, tenant: string, waitSeconds = 0, signal?: AbortSignal): Promise<RequestRecord> {
    const waitMs = this.clampWaitSeconds(waitSeconds) * 1000;
    return waitMs > 0 ? this.waitForTerminal(id, tenant, waitMs, signal) : this.readOwn(id, tenant);
  }

  /**
   * Cancels a request that has not started, or a running one of a pipeline (`runningCancels` says
   * which versions are: their workers stop the steps) that no identical request follows: the
   * cancelled record; 409 once it runs (a model's) or ended; 404 if unknown.
   */
  async cancel(
    id: string,
    tenant: string,
    runningCancels: (model: string, version: number) => boolean = () => false,
  ): Promise<RequestRecord> {
    const own = await this.readOwn(id, tenant);
    const running = runningCancels(own.model, own.version);
    const outcome = await this.deps.store.cancel(id, this.now(), { running });
    switch (outcome) {
      case 'cancelled':
        return this.readOwn(id, tenant);
      case 'conflict': {
        const record = await this.deps.store.get(id);
        const which = running
          ? 'only a queued request, or a running pipeline request no identical request follows, can be cancelled'
          : 'only a queued request can be cancelled';
        throw new ConflictError(`request ${id} is ${record?.status ?? 'no longer queued'}; ${which}`);
      }
      case 'missing':
        throw notFoundRequest(id);
      default: {
        const unreachable: never = outcome;
        throw new Error(`unknown cancel outcome ${String(unreachable)}`);
      }
    }
  }

  /**
   * Calls `emit` with the request's current status, then with each change, and finally with the
   * terminal record; resolves after the terminal event or when `signal` aborts. Throws NotFoundError
   * before emitting anything when the request is unknown to this tenant.
   */
  async followStatus(
    id: string,
    tenant: string,
    emit: (event: StatusEvent) => void | Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    const { watcher } = this.deps;
    const abort = this.withShutdown(signal);
    const changes: RequestStatus[] = [];
    const wakeup = new Wakeup();
    let resynced = false;
    // Subscribe before the first read: a change between the two is then queued, not lost.
    const unsubscribe = await watcher.watch(id, (status) => {
      changes.push(status);
      wakeup.wake();
    });
    const stopResync = watcher.onResync(() => {
      resynced = true;
      wakeup.wake();
    });
    try {
      let record = await this.readOwn(id, tenant);
      let last = record.status;
      if (TERMINAL_STATUSES.has(last)) {
        await emit({ kind: 'terminal', record });
        return;
      }
      emit({ kind: 'status', id, status: last });
      const recheckMs = this.deps.recheckIntervalMs ?? DEFAULT_RECHECK_INTERVAL_MS;
      for (;;) {
        const outcome = await wakeup.wait(this.untilDeadline(record, recheckMs), abort);
        if (outcome === 'aborted') return;
        const statuses = outcome === 'woken' ? changes.splice(0) : [];
        if (outcome === 'timeout' || resynced) {
          resynced = false;
          // Pub/sub is at-most-once (and lost while the subscriber reconnects): the record is the
          // source of truth, and a record that is gone ends the stream.
          record = await this.readAgain(id);
          statuses.push(record.status);
        }
        for (const status of statuses) {
          if (TERMINAL_STATUSES.has(status)) {
            const final = await this.readAgain(id);
            await emit(
              TERMINAL_STATUSES.has(final.status)
                ? { kind: 'terminal', record: final }
                : { kind: 'status', id, status },
            );
            return;
          }
          if (status !== last) {
            last = status;
            emit({ kind: 'status', id, status });
          }
        }
      }
    } finally {
      stopResync();
      await this.quietly(unsubscribe, id);
    }
  }

  /**
   * Race-free wait: subscribe first, then read the record, then wait for the terminal notification
   * or the deadline, and read the record again (it, not the message, is the answer).
   */
  async waitForTerminal(
    id: string,
    tenant: string,
    waitMs: number,
    signal: AbortSignal | undefined,
  ): Promise<StoredRecord> {
    const subscription = this.subscribeTerminal(id);
    try {
      await subscription.live;
      let record = await this.readOwn(id, tenant);
      const until = this.now() + waitMs;
      while (!TERMINAL_STATUSES.has(record.status)) {
        const left = until - this.now();
        if (left <= 0) break;
        // Woken by the message, the subscriber's reconnect, the deadline or the recheck: each time
        // the record is read again (a message can be lost, and so can the record).
        const outcome = await subscription.wakeup.wait(
          this.untilDeadline(record, Math.min(left, this.recheckMs)),
          this.withShutdown(signal),
        );
        record = await this.readAgain(id);
        if (outcome === 'aborted') break;
      }
      return record;
    } finally {
      subscription.release();
    }
  }

  /**
   * Waits for the `Prefer: wait` submit's end to be announced, `waitMs`, or an abort. Every
   * `recheckIntervalMs`, and when the subscriber is back from a lost connection, it reads the record
   * instead: the finished record when it ended unannounced (undefined otherwise, the announcement
   * being in `waiter.completion()`); NotFoundError when it is gone.
   */
  async awaitAnnouncement(
    id: string,
    waiter: TerminalSubscription,
    waitMs: number,
    signal: AbortSignal | undefined,
  ): Promise<StoredRecord | undefined> {
    const until = this.now() + waitMs;
    for (;;) {
      const left = until - this.now();
      if (left <= 0) return undefined;
      const outcome = await waiter.wakeup.wait(Math.min(left, this.recheckMs), this.withShutdown(signal));
      if (waiter.completion() !== undefined || outcome === 'aborted') return undefined;
      if (outcome === 'timeout' && this.now() >= until) return undefined;
      const record = await this.readAgain(id);
      if (TERMINAL_STATUSES.has(record.status)) return record;
    }
  }

  private get recheckMs(): number {
    return this.deps.recheckIntervalMs ?? DEFAULT_RECHECK_INTERVAL_MS;
  }

  /** A record being waited on, read again: 404 once it is gone, so no wait outlives it. */
  async readAgain(id: string): Promise<StoredRecord> {
    const record = await this.deps.store.get(id);
    if (record === undefined) throw notFoundRequest(id);
    return record;
  }

  /**
   * `ms`, cut short to just after the deadline of a request still queued: nothing is published when
   * a deadline passes unseen (no worker, no sweep yet), so the waiter wakes itself and the read that
   * follows (RequestStore.get) ends the request `expired`.
   */
  private untilDeadline(record: StoredRecord, ms: number): number {
    if (record.status !== 'queued' || record.deadline === undefined) return ms;
    return Math.min(ms, Math.max(0, record.deadline - this.now()) + DEADLINE_SLACK_MS);
  }

  /**
   * Gets ready to hear of the end of a request about to be submitted with `Prefer: wait`: on this
   * process's notify channel (the record names it in `notify`, no Redis command), or, for a watcher
   * without one, on the request's own done channel, subscribed before the submit so nothing is missed.
   */
  async awaitEnd(id: string): Promise<TerminalSubscription & { notify?: string; unsure?: boolean }> {
    const { watcher } = this.deps;
    if (watcher.instance === undefined) {
      const subscription = this.subscribeTerminal(id);
      try {
        await subscription.live;
      } catch (error: unknown) {
        subscription.release();
        throw error;
      }
      return subscription;
    }
    const wakeup = new Wakeup();
    let terminal: Announcement | undefined;
    const stopExpecting = watcher.expect(id, (head, message) => {
      if (!TERMINAL_STATUSES.has(head.status)) return;
      terminal ??= { head, message };
      wakeup.wake();
    });
    const stopResync = watcher.onResync(() => wakeup.wake());
    return {
      live: Promise.resolve(async () => undefined),
      wakeup,
      completion: () => terminal,
      release: () => {
        stopExpecting();
        stopResync();
      },
      notify: watcher.instance,
      unsure: !watcher.notifyReady,
    };
  }

  /**
   * Starts listening for the request's terminal notification. `live` resolves once the subscription
   * is active; `release` unsubscribes in the background (the answer never waits for it, and Redis may
   * be down by then).
   */
  private subscribeTerminal(id: string): TerminalSubscription {
    const wakeup = new Wakeup();
    let terminal: Announcement | undefined;
    const live = this.deps.watcher.watch(
      id,
      (status, completion) => {
        if (!TERMINAL_STATUSES.has(status)) return;
        if (completion !== undefined) terminal ??= { head: completion, decoded: completion };
        wakeup.wake();
      },
      { terminalOnly: true },
    );
    // A failed subscribe surfaces through `live` where it is awaited; this only avoids an unhandled rejection.
    live.catch(() => undefined);
    const stopResync = this.deps.watcher.onResync(() => wakeup.wake());
    return {
      live,
      wakeup,
      completion: () => terminal,
      release: () => {
        stopResync();
        live.then(
          (unsubscribe) => this.quietly(unsubscribe, id),
          () => undefined,
        );
      },
    };
  }

  /** The record, or 404 when it does not exist or belongs to another tenant (indistinguishable on purpose). */
  async readOwn(id: string, tenant: string): Promise<StoredRecord> {
    const record = await this.deps.store.get(id);
    if (record === undefined || record.tenant !== tenant) throw notFoundRequest(id);
    return record;
  }

  clampWaitSeconds(seconds: number): number {
    if (!Number.isFinite(seconds) || seconds <= 0) return 0;
    return Math.min(seconds, this.deps.config.maxWaitSeconds);
  }

  /** The caller's signal and the process's shutdown: a wait ends on either (no combined signal to build). */
  private withShutdown(signal: AbortSignal | undefined): (AbortSignal | undefined)[] {
    return [signal, this.deps.shutdownSignal];
  }

  /** Unsubscribing must not turn an answered request into an error (Redis may be down by then). */
  private async quietly(unsubscribe: () => Promise<void>, id: string): Promise<void> {
    try {
      await unsubscribe();
    } catch (error: unknown) {
      this.deps.logger.debug({ err: error, id }, 'unsubscribe failed');
    }
  }
}

export function notFoundRequest(id: string): NotFoundError {
  return new NotFoundError(`no request with id '${id}'`);
}
