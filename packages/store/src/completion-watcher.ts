import {
  type CompletionMessage,
  decodeCompletionHead,
  decodeCompletionMessage,
  REQUEST_STATUSES,
  type RequestStatus,
} from '@inferq/protocol';
import { Unpackr } from 'msgpackr';
import { closeConnection, type RedisConnection } from './connection.ts';
import { type Keys, keysFor } from './keys.ts';

/** A completion message's fields, its outputs left undecoded (they stay in its bytes). */
export type CompletionHead = Omit<CompletionMessage, 'outputs'>;

/** Receives the end of a request awaited with `expect`: the message's head and its bytes. */
export type ExpectedListener = (head: CompletionHead, message: Buffer) => void;

/** `completion` is the decoded message of the done channel; status changes come without one. */
type Listener = (status: RequestStatus, completion?: CompletionMessage) => void;

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
const STATUSES: ReadonlySet<string> = new Set(REQUEST_STATUSES);

/** Options of a CompletionWatcher. */
export interface CompletionWatcherOptions {
  subscriber: RedisConnection;
  prefix: string;
  /**
   * This process's name on its notify channel (`Keys.notifyChannel`), to which it stays subscribed:
   * requests submitted with `notify` set to it are awaited with `expect`, no subscription of their own.
   */
  instance?: string;
}

/**
 * Fans the per-request status and done channels out to in-process listeners over one subscriber
 * connection. Channels are subscribed on first use and dropped with their last listener, so a
 * process only receives messages of requests it is waiting on (a pattern subscription would make
 * every API process receive every result). Requests this process submitted and waits on
 * (`Prefer: wait`) come on its own notify channel instead, subscribed once (`expect`).
 */
export class CompletionWatcher {
  readonly instance: string | undefined;
  private readonly keys: Keys;
  private readonly subscriber: RedisConnection;
  /** Channel name -> its listeners. */
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly notifyChannel: string | undefined;
  /** Request id -> the listener `expect` registered for it. */
  private readonly expected = new Map<string, ExpectedListener>();
  private readonly notifyLive: Promise<void>;
  #notifyReady = false;
  /** Called once the channels are subscribed again after the connection was lost (`onResync`). */
  private readonly resyncListeners = new Set<() => void>();
  /** The connection closed since it was last ready: its next `ready` is a reconnect. */
  private disconnected = false;

  constructor(options: CompletionWatcherOptions) {
    this.keys = keysFor(options.prefix);
    this.subscriber = options.subscriber;
    this.instance = options.instance;
    this.subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) =>
      this.dispatch(channel, message),
    );
    // Redis closes a subscriber that falls too far behind (client-output-buffer-limit pubsub), and a
    // restart drops every connection: what was published meanwhile is lost, so once the channels
    // are subscribed again every waiter must read its record.
    this.subscriber.on('close', () => {
      this.disconnected = true;
    });
    this.subscriber.on('ready', () => {
      if (!this.disconnected) return;
      this.disconnected = false;
      void this.resync();
    });
    this.notifyChannel =
      options.instance === undefined ? undefined : this.keys.notifyChannel(options.instance);
    this.notifyLive =
      this.notifyChannel === undefined
        ? Promise.resolve()
        : this.subscriber.subscribe(this.notifyChannel).then(() => undefined);
    // Awaited by ready(); a failure here only means ioredis subscribes again once it reconnects.
    this.notifyLive.then(
      () => {
        this.#notifyReady = true;
      },
      () => undefined,
    );
  }

  /** Resolves once this process's notify channel is subscribed (at once without an instance). */
  ready(): Promise<void> {
    return this.notifyLive;
  }

  /** The notify channel has been subscribed (until then, `expect` may miss a message). */
  get notifyReady(): boolean {
    return this.#notifyReady;
  }

  /**
   * Calls `listener` each time the subscriber is back after losing its connection, once every channel
   * it listens on is subscribed again: messages published while it was away are lost, so a waiter
   * reads its record then. Until the returned function is called.
   */
  onResync(listener: () => void): () => void {
    this.resyncListeners.add(listener);
    return () => {
      this.resyncListeners.delete(listener);
    };
  }

  /**
   * Calls `listener` once with the completion message of request `id` if it arrives on this
   * process's notify channel, until the returned function is called: its fields but the outputs,
   * and its bytes (which hold the outputs). Sends nothing to Redis.
   */
  expect(id: string, listener: ExpectedListener): () => void {
    if (this.notifyChannel === undefined) throw new Error('this watcher has no notify channel (instance)');
    this.expected.set(id, listener);
    return () => {
      if (this.expected.get(id) === listener) this.expected.delete(id);
    };
  }

  /**
   * Calls `listener` with each status the request moves to (with `terminalOnly`, only with its
   * terminal one: a waiter needs no `running` message, and each is a message less to receive and
   * decode), from the moment the returned promise resolves (the subscription is live then: read the
   * record after it to close the race).
   */
  async watch(
    id: string,
    listener: Listener,
    options: { terminalOnly?: boolean } = {},
  ): Promise<() => Promise<void>> {
    const channels =
      options.terminalOnly === true
        ? [this.keys.doneChannel(id)]
        : [this.keys.statusChannel(id), this.keys.doneChannel(id)];
    const fresh: string[] = [];
    for (const channel of channels) {
      let set = this.listeners.get(channel);
      if (!set) {
        set = new Set();
        this.listeners.set(channel, set);
        fresh.push(channel);
      }
      set.add(listener);
    }
    let active = true;
    const release = async (): Promise<void> => {
      if (!active) return;
      active = false;
      const emptied: string[] = [];
      for (const channel of channels) {
        const set = this.listeners.get(channel);
        if (!set) continue;
        set.delete(listener);
        if (set.size === 0) {
          this.listeners.delete(channel);
          emptied.push(channel);
        }
      }
      if (emptied.length > 0) await this.unsubscribeSoon(...emptied);
    };
    if (fresh.length > 0) {
      try {
        await this.subscribeSoon(...fresh);
      } catch (error) {
        await release();
        throw error;
      }
    }
    return release;
  }

  /**
   * Channels first watched in the same tick are subscribed with one SUBSCRIBE: under load that is
   * one write for many requests; alone, it costs one setImmediate.
   */
  private readonly subscribeSoon = perTick((channels: string[]) => this.subscriber.subscribe(...channels));

  /**
   * Channels released in the same tick leave in one UNSUBSCRIBE. A channel watched again meanwhile
   * stays subscribed; a failure is ignored (Redis may be down, and the subscription dies with it).
   */
  private readonly unsubscribeSoon = perTick(async (channels: string[]) => {
    const stale = channels.filter((channel) => !this.listeners.has(channel));
    if (stale.length > 0) await this.subscriber.unsubscribe(...stale).catch(() => undefined);
  });

  /**
   * Subscribes again to every channel in use (ioredis does too, but its SUBSCRIBE is not awaited:
   * this one's reply says they are live), then tells the waiters to read their records. A failure
   * waits for the next reconnect, which comes back here.
   */
  private async resync(): Promise<void> {
    const channels = [...this.listeners.keys()];
    if (this.notifyChannel !== undefined) channels.push(this.notifyChannel);
    try {
      if (channels.length > 0) await this.subscriber.subscribe(...channels);
    } catch {
      return;
    }
    if (this.notifyChannel !== undefined) this.#notifyReady = true;
    for (const listener of [...this.resyncListeners]) listener();
  }

  async close(): Promise<void> {
    this.listeners.clear();
    this.expected.clear();
    this.resyncListeners.clear();
    await closeConnection(this.subscriber);
  }

  /** The request id of one of our status or done channels. */
  private idOf(channel: string): string | undefined {
    const rest = channel.slice(this.keys.prefix.length + 1);
    const separator = rest.indexOf(':');
    return separator < 0 ? undefined : rest.slice(separator + 1);
  }

  private dispatch(channel: Buffer, message: Buffer): void {
    const name = channel.toString();
    if (name === this.notifyChannel) {
      this.dispatchExpected(message);
      return;
    }
    const set = this.listeners.get(name);
    const id = this.idOf(name);
    if (!set || id === undefined) return;
    let status: unknown;
    let messageId: unknown;
    let completion: CompletionMessage | undefined;
    try {
      if (name === this.keys.doneChannel(id)) {
        completion = decodeCompletionMessage(message);
        ({ status, id: messageId } = completion);
      } else {
        ({ status, id: messageId } = unpackr.unpack(message) as { status?: unknown; id?: unknown });
      }
    } catch {
      return;
    }
    // Any tenant may name any channel as its `callback.channel`, this one included: a message about
    // another request is not news about this one (docs/security.md).
    if (messageId !== id) return;
    if (typeof status !== 'string' || !STATUSES.has(status)) return;
    for (const listener of [...set]) listener(status as RequestStatus, completion);
  }

  private dispatchExpected(message: Buffer): void {
    let head: CompletionHead;
    try {
      head = decodeCompletionHead(message);
    } catch {
      return;
    }
    if (typeof head.status !== 'string' || !STATUSES.has(head.status)) return;
    const listener = this.expected.get(head.id);
    if (listener === undefined) return;
    this.expected.delete(head.id);
    listener(head, message);
  }
}

/**
 * Collects the items handed to it during one tick of the event loop and sends them in one call on
 * the next `setImmediate`; every caller of that tick gets the outcome of that one call.
 */
function perTick<T>(send: (items: T[]) => Promise<unknown>): (...items: T[]) => Promise<void> {
  let pending: T[] = [];
  let flush: Promise<void> | undefined;
  return (...items) => {
    pending.push(...items);
    flush ??= new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        const batch = pending;
        pending = [];
        flush = undefined;
        send(batch).then(() => resolve(), reject);
      });
    });
    return flush;
  };
}
