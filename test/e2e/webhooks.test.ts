/**
 * Webhooks through the real processes: `inferq serve` (API + worker + private Redis) with a secret
 * and 127.0.0.1 allow-listed, and a real HTTP receiver on this machine.
 */
import { randomBytes } from 'node:crypto';
import { verifyWebhook } from '@inferq/webhooks';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AllInOne, startAllInOne } from '../helpers/processes.ts';
import {
  eventually,
  type ReceivedWebhook,
  startWebhookReceiver,
  type WebhookReceiver,
} from '../helpers/webhook-receiver.ts';

const key = randomBytes(32);
let app: AllInOne;
let receiver: WebhookReceiver;
let redis: Redis;

beforeAll(async () => {
  receiver = await startWebhookReceiver();
  app = await startAllInOne({
    env: {
      WEBHOOK_SECRET: `whsec_${key.toString('base64')}`,
      WEBHOOK_ALLOW_CIDRS: '127.0.0.1/32',
      LOG_LEVEL: 'warn',
    },
  });
  redis = new Redis(app.redis!.url);
});

afterAll(async () => {
  redis?.disconnect();
  await app?.stop();
  await receiver?.close();
});

function body(values: number[], callbackUrl: string): string {
  return JSON.stringify({
    inputs: { x: { dtype: 'float32', shape: [1, 4], data: values } },
    callback: { url: callbackUrl },
    metadata: { order: 'A-17' },
  });
}

async function submit(json: string): Promise<Response> {
  return fetch(`${app.url}/v1/models/noop/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: json,
  });
}

function verified(call: ReceivedWebhook): boolean {
  return verifyWebhook(
    key,
    {
      'webhook-id': String(call.headers['webhook-id']),
      'webhook-timestamp': String(call.headers['webhook-timestamp']),
      'webhook-signature': String(call.headers['webhook-signature']),
    },
    call.body,
    Math.floor(Date.now() / 1000),
  );
}

describe('callback.url', () => {
  it('receives the signed record once per request, a cache hit included', async () => {
    const values = [Math.random(), 2, 3, 4];
    const url = `${receiver.origin}/hooks/inferq?source=e2e`;
    const queued = await submit(body(values, url));
    expect(queued.status).toBe(202);
    const { id } = (await queued.json()) as { id: string };

    const call = await eventually(() => receiver.received.find((c) => c.headers['webhook-id'] === id));
    expect(call.path).toBe('/hooks/inferq?source=e2e');
    expect(verified(call)).toBe(true);
    const record = await (await fetch(`${app.url}/v1/requests/${id}`)).json();
    expect(JSON.parse(call.body.toString())).toEqual(record);
    expect(record).toMatchObject({
      id,
      status: 'succeeded',
      cached: false,
      outputs: { y: { dtype: 'float32', shape: [1, 4] } },
      metadata: { order: 'A-17' },
    });

    // Settled on the record: nothing more will be sent for it.
    await eventually(async () =>
      (await redis.hget(`{inferq}:req:${id}`, 'callbackStatus')) === 'delivered' ? true : undefined,
    );
    expect(await redis.zscore('{inferq}:webhooks', id)).toBeNull();
    expect(receiver.received.filter((c) => c.headers['webhook-id'] === id)).toHaveLength(1);

    // The same inputs again: answered from the cache at once, and still called back.
    const hit = await submit(body(values, url));
    expect(hit.status).toBe(200);
    const cached = (await hit.json()) as { id: string; cached: boolean };
    expect(cached.cached).toBe(true);
    const cachedCall = await eventually(() =>
      receiver.received.find((c) => c.headers['webhook-id'] === cached.id),
    );
    expect(verified(cachedCall)).toBe(true);
    expect(JSON.parse(cachedCall.body.toString())).toMatchObject({
      id: cached.id,
      status: 'succeeded',
      cached: true,
    });

    const metrics = await (await fetch(`${app.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/^inferq_webhook_deliveries_total\{outcome="delivered",service="worker"\} 2$/m);
  });

  it.each([
    ['https://10.1.2.3/hook', 'callback.url 10.1.2.3 is not a public address (private)'],
    ['https://[::1]/hook', 'callback.url ::1 is not a public address (loopback)'],
    ['https://localhost/hook', 'callback.url localhost is a loopback name'],
    [
      'http://hooks.example.com/hook',
      'callback.url must be https:// (http:// is accepted only for allow-listed destinations)',
    ],
    ['https://user:secret@hooks.example.com/hook', 'callback.url must not carry a user name or password'],
  ])('refuses %s at submit with 422', async (url, detail) => {
    const refused = await submit(body([1, 2, 3, 4], url));
    expect(refused.status).toBe(422);
    expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await refused.json()).toEqual({
      type: 'https://inferq.dev/problems/callback-refused',
      title: 'Callback URL refused',
      status: 422,
      detail,
    });
  });
});
