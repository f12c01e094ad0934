import { EventEmitter } from 'node:events';
import { encodeCompletionMessage } from '@inferq/protocol';
import { describe, expect, it } from 'vitest';
import { doneChannel, type PubSubConnection, subscribeCompletions } from './subscribe.ts';

/** A pub/sub connection in memory: what it subscribes to, and `publish` to deliver a message. */
class FakeConnection extends EventEmitter implements PubSubConnection {
  readonly channels = new Set<string>();
  async subscribe(...channels: string[]): Promise<void> {
    for (const channel of channels) this.channels.add(channel);
  }
  async unsubscribe(...channels: string[]): Promise<void> {
    for (const channel of channels) this.channels.delete(channel);
  }
  publish(channel: string, message: Uint8Array): void {
    if (this.channels.has(channel)) this.emit('messageBuffer', Buffer.from(channel), Buffer.from(message));
  }
}

const message = (id: string) =>
  encodeCompletionMessage({
    id,
    status: 'succeeded',
    model: 'm',
    version: 1,
    cached: false,
    timings: { queueMs: 1, batchWaitMs: 0, inferMs: 2, totalMs: 3 },
  });

describe('subscribeCompletions', () => {
  it("yields the channel's completion messages in order, decoded, skipping other channels and other payloads", async () => {
    const connection = new FakeConnection();
    const subscription = subscribeCompletions(connection, 'orders');
    await subscription.ready;
    connection.publish('orders', message('a'));
    connection.publish('other', message('x'));
    connection.publish('orders', new TextEncoder().encode('not msgpack of a completion'));
    connection.publish('orders', message('b'));
    const ids: string[] = [];
    for await (const completion of subscription) {
      ids.push(completion.id);
      if (ids.length === 2) break;
    }
    expect(ids).toEqual(['a', 'b']);
    // Leaving the loop closed the subscription.
    expect(connection.channels.has('orders')).toBe(false);
  });

  it('ends a waiting iteration on close, and on its signal', async () => {
    const connection = new FakeConnection();
    const closing = subscribeCompletions(connection, 'a');
    const waiting = closing.next();
    await closing.close();
    expect(await waiting).toEqual({ value: undefined, done: true });
    const abort = new AbortController();
    const aborted = subscribeCompletions(connection, 'b', { signal: abort.signal });
    const pending = aborted.next();
    abort.abort();
    expect(await pending).toEqual({ value: undefined, done: true });
    expect([...connection.channels]).toEqual([]);
  });

  it('names a request done channel under the key prefix', () => {
    expect(doneChannel('abc')).toBe('{inferq}:done:abc');
    expect(doneChannel('abc', '{prod}')).toBe('{prod}:done:abc');
  });
});
