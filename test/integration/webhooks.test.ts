import { randomBytes } from 'node:crypto';
import { createLogger } from '@inferq/observability';
import {
  cacheKey,
  decodeRecord,
  encodePayload,
  encodeRecord,
  encodeTensorMap,
  newRequestId,
  type TensorMap,
} from '@inferq/protocol';
import { createRedisConnection, RequestStore, type SubmitParams } from '@inferq/store';
import {
  type Resolver,
  type SignedHeaders,
  verifyWebhook,
  WebhookDispatcher,
  type WebhookSettings,
} from '@inferq/webhooks';
import type { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { startAsWorker } from '../helpers/queue.ts';
import {
  eventually,
  type ReceivedWebhook,
  startWebhookReceiver,
  type WebhookReceiver,
} from '../helpers/webhook-receiver.ts';

const inputs: TensorMap = { x: { dtype: 'float32', shape: [1, 2], data: new Float32Array([1, 2]) } };
const outputs: TensorMap = { y: { dtype: 'float32', shape: [1, 2], data: new Float32Array([2, 4]) } };
const secret = new Uint8Array(randomBytes(32));
const logger = createLogger({ logLevel: 'silent' }, 'worker');

let redis: Redis;
let store: RequestStore;
let prefix: string;
const receivers: WebhookReceiver[] = [];
const dispatchers: WebhookDispatcher[] = [];

function params(overrides: Partial<SubmitParams> = {}): SubmitParams {
  return {
    id: newRequestId(),
    model: 'm',
    version: 1,
    tenant: 'public',
    cacheKey: cacheKey({ model: 'm', version: 1, inputs }),
    useCache: true,
    cacheTtlSeconds: 60,
    payload: encodePayload({ inputs }),
    now: Date.now(),
    ...overrides,
  };
}

async function succeed(id: string): Promise<void> {
  await store.complete([
    {
      id,
      model: 'm',
      version: 1,
      createdAt: Date.now() - 5,
      status: 'succeeded',
      outputs: encodeTensorMap(outputs),
      timings: { queueMs: 1, batchWaitMs: 0, inferMs: 2 },
      batchSize: 1,
      now: Date.now(),
    },
  ]);
}

/** A request that ran and succeeded, whose webhook is now due. */
async function finishedRequest(callbackUrl: string): Promise<string> {
  const request = params({ callbackUrl, useCache: false });
  await store.submit(request);
  await startAsWorker(store, [request.id], Date.now());
  await succeed(request.id);
  return request.id;
}

function startDispatcher(
  overrides: Partial<WebhookSettings> = {},
  extra: { registry?: Registry; resolver?: Resolver } = {},
): WebhookDispatcher {
  const dispatcher = new WebhookDispatcher({
    redis,
    store,
    logger,
    settings: {
      secret,
      allowHosts: [],
      allowCidrs: ['127.0.0.1/32'],
      maxAttempts: 5,
      retryBaseMs: 10,
      retryMaxMs: 40,
      timeoutMs: 2_000,
      ...overrides,
    },
    pollIntervalMs: 20,
    ...extra,
  });
  dispatcher.start();
  dispatchers.push(dispatcher);
  return dispatcher;
}

async function receiver(...args: Parameters<typeof startWebhookReceiver>): Promise<WebhookReceiver> {
  const started = await startWebhookReceiver(...args);
  receivers.push(started);
  return started;
}

/** The record's webhook fields once the dispatcher settled it (delivered or failed). */
async function settled(id: string): Promise<Record<string, string>> {
  return eventually(async () => {
    const fields = await redis.hgetall(store.keys.request(id));
    return fields.callbackStatus === undefined ? undefined : fields;
  });
}

function webhookFields(fields: Record<string, string>): Record<string, string | undefined> {
  return {
    callbackStatus: fields.callbackStatus,
    callbackAttempts: fields.callbackAttempts,
    callbackError: fields.callbackError,
  };
}

function signedHeadersOf(call: ReceivedWebhook): SignedHeaders {
  return {
    'webhook-id': String(call.headers['webhook-id']),
    'webhook-timestamp': String(call.headers['webhook-timestamp']),
    'webhook-signature': String(call.headers['webhook-signature']),
  };
}

beforeEach(() => {
  prefix = `{t-${randomBytes(4).toString('hex')}}`;
  redis = createRedisConnection(inject('redisUrl'), 'worker');
  store = new RequestStore({ redis, prefix, resultTtlSeconds: 60 });
});

afterEach(async () => {
  await Promise.all(dispatchers.splice(0).map((d) => d.stop()));
  await Promise.all(receivers.splice(0).map((r) => r.close()));
  await redis.quit();
});

describe('a request with a callback URL', () => {
  const url = 'https://hooks.example.com/inferq';

  it('has its webhook due whichever way it ends', async () => {
    const due = async (id: string): Promise<boolean> =>
      (await redis.zscore(store.keys.webhooks, id)) !== null;

    const cancelled = params({ callbackUrl: url, useCache: false });
    await store.submit(cancelled);
    expect(await store.cancel(cancelled.id, Date.now())).toBe('cancelled');

    const expired = params({ callbackUrl: url, useCache: false, deadline: Date.now() - 1 });
    await store.submit(expired);
    expect(await startAsWorker(store, [expired.id], Date.now())).toEqual([
      { id: expired.id, state: 'dropped', reason: 'expired' },
    ]);

    const leader = params({ callbackUrl: url });
    const follower = params({ callbackUrl: url });
    const silent = params();
    await store.submit(leader);
    expect(await store.submit(follower)).toEqual({ kind: 'coalesced', leaderId: leader.id });
    expect(await store.submit(silent)).toEqual({ kind: 'coalesced', leaderId: leader.id });
    await startAsWorker(store, [leader.id], Date.now());
    await succeed(leader.id);

    const failed = params({ callbackUrl: url, useCache: false });
    await store.submit(failed);
    await startAsWorker(store, [failed.id], Date.now());
    await store.complete([
      {
        id: failed.id,
        model: 'm',
        version: 1,
        createdAt: Date.now(),
        status: 'failed',
        error: { code: 'inference_failed', message: 'boom' },
        timings: { queueMs: 0, batchWaitMs: 0, inferMs: 0 },
        batchSize: 1,
        now: Date.now(),
      },
    ]);

    const cached = params({ callbackUrl: url });
    expect((await store.submit(cached)).kind).toBe('cached');

    for (const id of [cancelled.id, expired.id, leader.id, follower.id, failed.id, cached.id]) {
      expect(await due(id)).toBe(true);
    }
    expect(await due(silent.id)).toBe(false);
    expect(await redis.zcard(store.keys.webhooks)).toBe(6);
  });

  it('is not scheduled twice when its completion is written twice (a re-run job)', async () => {
    const id = await finishedRequest(url);
    await redis.zadd(store.keys.webhooks, 1, id);
    await succeed(id);
    expect(await redis.zscore(store.keys.webhooks, id)).toBe('1');
  });
});

describe('WebhookDispatcher', () => {
  it('POSTs the signed record once and records the delivery', async () => {
    const target = await receiver();
    const id = await finishedRequest(`${target.origin}/hook?token=abc`);
    const registry = new Registry();
    startDispatcher({}, { registry });

    const fields = await settled(id);
    expect(webhookFields(fields)).toEqual({
      callbackStatus: 'delivered',
      callbackAttempts: '1',
      callbackError: undefined,
    });
    expect(await redis.zcard(store.keys.webhooks)).toBe(0);
    expect(target.received).toHaveLength(1);
    const [call] = target.received as [ReceivedWebhook];
    expect(call.method).toBe('POST');
    expect(call.path).toBe('/hook?token=abc');
    expect(call.headers['content-type']).toBe('application/json');
    expect(call.headers['inferq-delivery-attempt']).toBe('1');
    expect(call.headers['webhook-id']).toBe(id);
    expect(verifyWebhook(secret, signedHeadersOf(call), call.body, Math.floor(Date.now() / 1000))).toBe(true);
    expect(
      verifyWebhook(new Uint8Array(32), signedHeadersOf(call), call.body, Math.floor(Date.now() / 1000)),
    ).toBe(false);

    const record = await store.get(id);
    expect(call.body.toString()).toBe(Buffer.from(encodeRecord(record!, 'json')).toString());
    const sent = decodeRecord(call.body, 'json');
    expect(sent).toMatchObject({ id, status: 'succeeded', model: 'm', version: 1, cached: false });
    expect(sent.outputs).toEqual(outputs);
    expect(JSON.parse(call.body.toString())).not.toHaveProperty('tenant');

    const text = await registry.metrics();
    expect(text).toMatch(/^inferq_webhook_deliveries_total\{outcome="delivered"\} 1$/m);
    expect(text).toMatch(/^inferq_webhook_attempts_total\{result="2xx"\} 1$/m);
  });

  it('connects to the checked address while sending the original Host header', async () => {
    const target = await receiver();
    // No DNS server knows this name: the request can only reach the receiver through the pinned address.
    const resolver: Resolver = async (host) => {
      if (host !== 'hooks.test') throw new Error(`unexpected lookup of ${host}`);
      return [{ address: '127.0.0.1', family: 4 }];
    };
    const id = await finishedRequest(`http://hooks.test:${target.port}/in`);
    startDispatcher({ allowHosts: ['hooks.test'], allowCidrs: [] }, { resolver });

    expect(webhookFields(await settled(id))).toMatchObject({ callbackStatus: 'delivered' });
    expect(target.received.map((call) => call.headers.host)).toEqual([`hooks.test:${target.port}`]);
  });

  it('retries after 500s with a fresh signature each time, then succeeds', async () => {
    const target = await receiver((call) => ({ status: call < 2 ? 500 : 200 }));
    const id = await finishedRequest(`${target.origin}/hook`);
    startDispatcher();

    expect(webhookFields(await settled(id))).toEqual({
      callbackStatus: 'delivered',
      callbackAttempts: '3',
      callbackError: undefined,
    });
    expect(target.received.map((call) => call.headers['inferq-delivery-attempt'])).toEqual(['1', '2', '3']);
    expect(target.received.map((call) => call.headers['webhook-id'])).toEqual([id, id, id]);
    const now = Math.floor(Date.now() / 1000);
    for (const call of target.received)
      expect(verifyWebhook(secret, signedHeadersOf(call), call.body, now)).toBe(true);
    expect(new Set(target.received.map((call) => call.body.toString())).size).toBe(1);
  });

  it('gives up after the last attempt and says so on the record', async () => {
    const target = await receiver(() => ({ status: 503 }));
    const id = await finishedRequest(`${target.origin}/hook`);
    const registry = new Registry();
    startDispatcher({ maxAttempts: 3 }, { registry });

    expect(webhookFields(await settled(id))).toEqual({
      callbackStatus: 'failed',
      callbackAttempts: '3',
      callbackError: 'HTTP 503',
    });
    expect(await redis.zcard(store.keys.webhooks)).toBe(0);
    expect(target.received.map((call) => call.headers['inferq-delivery-attempt'])).toEqual(['1', '2', '3']);
    const text = await registry.metrics();
    expect(text).toMatch(/^inferq_webhook_deliveries_total\{outcome="failed"\} 1$/m);
    expect(text).toMatch(/^inferq_webhook_attempts_total\{result="5xx"\} 3$/m);
    // The record itself is untouched otherwise.
    expect((await store.get(id))?.status).toBe('succeeded');
  });

  it('does not follow a redirect', async () => {
    const elsewhere = await receiver();
    const target = await receiver(() => ({
      status: 302,
      headers: { location: `${elsewhere.origin}/stolen` },
    }));
    const id = await finishedRequest(`${target.origin}/hook`);
    startDispatcher({ maxAttempts: 2 });

    expect(webhookFields(await settled(id))).toEqual({
      callbackStatus: 'failed',
      callbackAttempts: '2',
      callbackError: 'HTTP 302: redirect not followed',
    });
    expect(target.received).toHaveLength(2);
    expect(elsewhere.received).toHaveLength(0);
  });

  it('refuses a name that resolves to a loopback address unless it is allow-listed', async () => {
    const target = await receiver();
    const id = await finishedRequest(`https://localhost:${target.port}/hook`);
    const registry = new Registry();
    startDispatcher({ allowCidrs: [] }, { registry });

    const fields = await settled(id);
    expect(webhookFields(fields)).toEqual({
      callbackStatus: 'failed',
      callbackAttempts: '1',
      callbackError: expect.stringMatching(
        /^localhost resolves to (127\.0\.0\.1|::1), not a public address \(loopback\)$/,
      ),
    });
    expect(target.received).toHaveLength(0);
    const text = await registry.metrics();
    expect(text).toMatch(/^inferq_webhook_deliveries_total\{outcome="refused"\} 1$/m);
    expect(text).toMatch(/^inferq_webhook_attempts_total\{result="refused"\} 1$/m);
  });

  it('refuses a private address literal and an http URL that is not allow-listed', async () => {
    const literal = await finishedRequest('https://10.0.0.1/hook');
    const plain = await finishedRequest('http://hooks.example.com/hook');
    startDispatcher({ allowCidrs: [] });

    expect(webhookFields(await settled(literal))).toEqual({
      callbackStatus: 'failed',
      callbackAttempts: '1',
      callbackError: 'callback URL 10.0.0.1 is not a public address (private)',
    });
    expect(webhookFields(await settled(plain))).toEqual({
      callbackStatus: 'failed',
      callbackAttempts: '1',
      callbackError: 'callback URL must be https:// (http:// is accepted only for allow-listed destinations)',
    });
  });

  it('drops the webhook of a record that expired before delivery', async () => {
    const registry = new Registry();
    const id = newRequestId();
    await redis.zadd(store.keys.webhooks, Date.now(), id);
    startDispatcher({}, { registry });

    await eventually(async () => ((await redis.zcard(store.keys.webhooks)) === 0 ? true : undefined));
    expect(await redis.exists(store.keys.request(id))).toBe(0);
    await eventually(async () =>
      /^inferq_webhook_deliveries_total\{outcome="expired"\} 1$/m.test(await registry.metrics())
        ? true
        : undefined,
    );
  });

  it('gives up a webhook whose attempts all died mid-way instead of trying it for ever', async () => {
    const target = await receiver();
    const id = await finishedRequest(`${target.origin}/hook`);
    await redis.hset(store.keys.request(id), 'callbackAttempts', '5');
    startDispatcher({ maxAttempts: 5 });

    expect(webhookFields(await settled(id))).toEqual({
      callbackStatus: 'failed',
      callbackAttempts: '6',
      callbackError: 'no result after 5 attempts',
    });
    expect(target.received).toHaveLength(0);
  });

  it('takes over the webhooks of a dispatcher that died mid-delivery once their lease runs out', async () => {
    const target = await receiver();
    const id = await finishedRequest(`${target.origin}/hook`);
    // What a dead dispatcher leaves behind: the attempt counted, the entry leased into the future.
    await redis.hincrby(store.keys.request(id), 'callbackAttempts', 1);
    await redis.zadd(store.keys.webhooks, Date.now() + 60_000, id);
    const clock = { now: Date.now() };
    const dispatcher = new WebhookDispatcher({
      redis,
      store,
      logger,
      settings: {
        secret,
        allowHosts: [],
        allowCidrs: ['127.0.0.1/32'],
        maxAttempts: 5,
        retryBaseMs: 10,
        retryMaxMs: 40,
        timeoutMs: 2_000,
      },
      pollIntervalMs: 20,
      now: () => clock.now,
    });
    dispatchers.push(dispatcher);
    dispatcher.start();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(target.received).toHaveLength(0);

    clock.now += 61_000;
    expect(webhookFields(await settled(id))).toEqual({
      callbackStatus: 'delivered',
      callbackAttempts: '2',
      callbackError: undefined,
    });
    expect(target.received.map((call) => call.headers['inferq-delivery-attempt'])).toEqual(['2']);
  });
});
