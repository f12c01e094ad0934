import { REQUEST_STATUSES, type RequestStatus } from '@inferq/protocol';
import type { Redis } from 'ioredis';
import { Unpackr } from 'msgpackr';
import { type Keys, keysFor } from './keys.ts';

type Listener = (status: RequestStatus) => void;

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
const STATUSES: ReadonlySet<string> = new Set(REQUEST_STATUSES);

/**
 * Fans the per-request status and done channels out to in-process listeners over one subscriber
 * connection. Channels are subscribed on first use and dropped with their last listener, so a
 * process only receives messages of requests it is waiting on (a pattern subscription would make
 * every API process receive every result).
 */
export class CompletionWatcher {
  private readonly keys: Keys;
  private readonly subscriber: Redis;
  private readonly listeners = new Map<string, Set<Listener>>();

  constructor(options: { subscriber: Redis; prefix: string }) {
    this.keys = keysFor(options.prefix);
    this.subscriber = options.subscriber;
    this.subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) =>
      this.dispatch(channel, message),
    );
  }

  /**
   * Calls `listener` with each status the request moves to, from the moment the returned promise
   * resolves (the subscription is live then: read the record after it to close the race).
   */
  async watch(id: string, listener: Listener): Promise<() => Promise<void>> {
    let set = this.listeners.get(id);
    const first = !set;
    if (!set) {
      set = new Set();
      this.listeners.set(id, set);
    }
    set.add(listener);
    if (first) {
      try {
        await this.subscriber.subscribe(this.keys.statusChannel(id), this.keys.doneChannel(id));
      } catch (error) {
        set.delete(listener);
        if (set.size === 0) this.listeners.delete(id);
        throw error;
      }
    }
    let active = true;
    return async () => {
      if (!active) return;
      active = false;
      const current = this.listeners.get(id);
      if (!current) return;
      current.delete(listener);
      if (current.size === 0) {
        this.listeners.delete(id);
        await this.subscriber
          .unsubscribe(this.keys.statusChannel(id), this.keys.doneChannel(id))
          .catch(() => undefined);
      }
    };
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.subscriber.quit().catch(() => undefined);
  }

  private dispatch(channel: Buffer, message: Buffer): void {
    const name = channel.toString();
    const prefixLength = this.keys.prefix.length;
    const rest = name.slice(prefixLength + 1);
    const separator = rest.indexOf(':');
    if (separator < 0) return;
    const id = rest.slice(separator + 1);
    const set = this.listeners.get(id);
    if (!set) return;
    let status: unknown;
    try {
      status = (unpackr.unpack(message) as { status?: unknown }).status;
    } catch {
      return;
    }
    if (typeof status !== 'string' || !STATUSES.has(status)) return;
    for (const listener of [...set]) listener(status as RequestStatus);
  }
}
