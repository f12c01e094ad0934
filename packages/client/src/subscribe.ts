/**
 * Completion messages over Redis pub/sub (docs/api.md, "Request record"): what a request sent with
 * `callback.channel` publishes there when it ends, and what every request publishes on its own done
 * channel, `<prefix>:done:<id>`. The helper takes a Redis connection of the caller's (ioredis, or
 * anything with the same four methods), which it puts in subscriber mode: give it one of its own.
 */
import { type CompletionMessage, decodeCompletionMessage } from '@inferq/protocol';

/** The part of an ioredis connection the helper uses. */
export interface PubSubConnection {
  subscribe(...channels: string[]): Promise<unknown>;
  unsubscribe(...channels: string[]): Promise<unknown>;
  on(event: 'messageBuffer', listener: (channel: Buffer, message: Buffer) => void): unknown;
  off(event: 'messageBuffer', listener: (channel: Buffer, message: Buffer) => void): unknown;
}

/** The completion messages of one channel, in the order they arrive, until `close` or the signal. */
export interface CompletionSubscription extends AsyncIterableIterator<CompletionMessage> {
  /** Resolves once the channel is subscribed: a message published from then on is received. */
  readonly ready: Promise<void>;
  /** Unsubscribes; an iteration in progress ends, and messages not yet read are dropped. */
  close(): Promise<void>;
}

/** The done channel of request `id`, under the deployment's key prefix (QUEUE_PREFIX, default `{inferq}`). */
export function doneChannel(id: string, prefix = '{inferq}'): string {
  return `${prefix}:done:${id}`;
}

/**
 * Subscribes `connection` to `channel` and yields each completion message published there, decoded
 * (outputs as typed arrays; a message whose outputs were too large to carry has `outputsOmitted`:
 * read the record). Pub/sub is at-most-once: a message published while the connection is away is
 * lost, so a caller that must not miss an end reads the record after `ready` as well.
 */
export function subscribeCompletions(
  connection: PubSubConnection,
  channel: string,
  options: { signal?: AbortSignal } = {},
): CompletionSubscription {
  const queued: CompletionMessage[] = [];
  let waiting: ((result: IteratorResult<CompletionMessage>) => void) | undefined;
  let closed = false;
  const listener = (from: Buffer, message: Buffer): void => {
    if (closed || from.toString() !== channel) return;
    let decoded: CompletionMessage;
    try {
      decoded = decodeCompletionMessage(message);
    } catch {
      return; // Not a completion message: someone else publishes on this channel too.
    }
    if (waiting !== undefined) {
      const deliver = waiting;
      waiting = undefined;
      deliver({ value: decoded, done: false });
    } else {
      queued.push(decoded);
    }
  };
  connection.on('messageBuffer', listener);
  const ready = connection.subscribe(channel).then(() => undefined);
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    queued.length = 0;
    connection.off('messageBuffer', listener);
    options.signal?.removeEventListener('abort', onAbort);
    waiting?.({ value: undefined, done: true });
    waiting = undefined;
    await connection.unsubscribe(channel);
  };
  const onAbort = (): void => void close();
  if (options.signal?.aborted) void close();
  else options.signal?.addEventListener('abort', onAbort, { once: true });

  const subscription: CompletionSubscription = {
    ready,
    close,
    next: () => {
      const value = queued.shift();
      if (value !== undefined) return Promise.resolve({ value, done: false });
      if (closed) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve) => {
        waiting = resolve;
      });
    },
    return: async () => {
      await close();
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]() {
      return subscription;
    },
  };
  return subscription;
}
