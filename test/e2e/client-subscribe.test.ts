/**
 * The client SDK's pub/sub helper (packages/client, `subscribeCompletions`) against the all-in-one:
 * completion messages of requests sent with `callback.channel`, and of one request's done channel.
 */
import { doneChannel, InferqClient, subscribeCompletions } from '@inferq/client';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AllInOne, startAllInOne } from '../helpers/processes.ts';

let app: AllInOne;
let subscriber: Redis;

beforeAll(async () => {
  app = await startAllInOne();
  subscriber = new Redis(app.redis!.url);
});

afterAll(async () => {
  subscriber?.disconnect();
  await app?.stop();
});

const x = (values: number[]) => ({
  dtype: 'float32' as const,
  shape: [1, 4],
  data: new Float32Array(values),
});

describe('subscribeCompletions', () => {
  it('yields the completion message of each request sent with the channel as its callback.channel, decoded', async () => {
    const client = new InferqClient({ baseUrl: app.url });
    const subscription = subscribeCompletions(subscriber, 'orders');
    await subscription.ready;
    const first = await client.submit('noop', {
      inputs: { x: x([1, 2, 3, 4]) },
      callback: { channel: 'orders' },
    });
    const second = await client.submit('noop', {
      inputs: { x: x([5, 6, 7, 8]) },
      callback: { channel: 'orders' },
    });
    const received = [];
    for await (const message of subscription) {
      received.push(message);
      if (received.length === 2) break;
    }
    const byId = new Map(received.map((message) => [message.id, message]));
    expect([...byId.keys()].sort()).toEqual([first.id, second.id].sort());
    expect(byId.get(first.id)).toMatchObject({ status: 'succeeded', model: 'noop', version: 1 });
    expect(byId.get(first.id)!.outputs).toEqual({ y: x([1, 2, 3, 4]) });
    expect(byId.get(second.id)!.outputs).toEqual({ y: x([5, 6, 7, 8]) });
  });

  it("reads one request's done channel, and ends its iteration on close", async () => {
    const client = new InferqClient({ baseUrl: app.url });
    // A request's id is known only once it is submitted: subscribe to its done channel, then read its
    // record (the race-free order: an end after the subscription arrives as a message, one before it
    // is in the record).
    const { id } = await client.submit('noop', { inputs: { x: x([9, 9, 9, 9]) } });
    const subscription = subscribeCompletions(subscriber, doneChannel(id));
    await subscription.ready;
    const record = await client.get(id);
    const message = record.status === 'succeeded' ? undefined : (await subscription.next()).value;
    await subscription.close();
    expect((await subscription.next()).done).toBe(true);
    // Either way the end is known: from the message, or (it ended before the subscription) from the record.
    expect((message ?? record).status).toBe('succeeded');
    expect(doneChannel(id)).toBe(`{inferq}:done:${id}`);
  });
});
