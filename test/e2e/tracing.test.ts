/**
 * Tracing through the real processes (`inferq serve`: API + worker + private Redis) against a real
 * OTLP/HTTP receiver and a real webhook receiver on this machine: a request's W3C context travels
 * from its HTTP request through the queue to the worker's spans and onto its webhook, with tracing on
 * and off (docs/observability.md, "Tracing and request logs").
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RequestStore } from '@inferq/store';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeIdentityModel } from '../helpers/onnx-models.ts';
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from '../helpers/otlp-receiver.ts';
import { type AllInOne, startAllInOne } from '../helpers/processes.ts';
import { testQueue } from '../helpers/queue-backend.ts';
import { eventually, startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.ts';

const secret = `whsec_${randomBytes(32).toString('base64')}`;
const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

let receiver: WebhookReceiver;
/**
 * A model repository of one small model, `echo` (identity, float32 [N, 4]), quick to serve, and a
 * pipeline `chain` whose one step is `echo`.
 */
let models: string;

beforeAll(async () => {
  receiver = await startWebhookReceiver();
  models = mkdtempSync(join(tmpdir(), 'inferq-tracing-models-'));
  writeIdentityModel(join(models, 'echo', '1', 'model.onnx'), 'float32', [4]);
  mkdirSync(join(models, 'chain', '1'), { recursive: true });
  writeFileSync(
    join(models, 'chain', '1', 'pipeline.json'),
    JSON.stringify({
      inputs: [{ name: 'x', dtype: 'float32', shape: [-1, 4] }],
      outputs: [{ name: 'y', dtype: 'float32', shape: [-1, 4], from: 'echo.y' }],
      steps: [{ name: 'echo', model: 'echo', inputs: { x: 'x' } }],
    }),
  );
});

afterAll(async () => {
  await receiver?.close();
  if (models !== undefined) rmSync(models, { recursive: true, force: true });
});

/** The common environment: webhooks to this machine, the echo model, quick span export. */
function environment(extra: Record<string, string>): Record<string, string> {
  return {
    WEBHOOK_SECRET: secret,
    WEBHOOK_ALLOW_CIDRS: '127.0.0.1/32',
    MODEL_REPOSITORY: models,
    LOG_LEVEL: 'info',
    OTEL_BSP_SCHEDULE_DELAY: '50',
    ...extra,
  };
}

/** Submits one echo request with a callback URL (fresh values: never a cache hit unless `values` repeat). */
async function submit(
  app: AllInOne,
  headers: Record<string, string>,
  values = [Math.random(), Math.random(), 3, 4],
  model = 'echo',
): Promise<{ status: number; id: string }> {
  const response = await fetch(`${app.url}/v1/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({
      inputs: { x: { dtype: 'float32', shape: [1, 4], data: values } },
      callback: { url: `${receiver.origin}/hooks` },
    }),
  });
  const body = (await response.json()) as { id: string };
  return { status: response.status, id: body.id };
}

function webhookOf(id: string): Promise<{ traceparent?: string; tracestate?: string }> {
  return eventually(() => {
    const call = receiver.received.find((c) => c.headers['webhook-id'] === id);
    if (call === undefined) return undefined;
    const { traceparent, tracestate } = call.headers;
    return {
      ...(typeof traceparent === 'string' ? { traceparent } : {}),
      ...(typeof tracestate === 'string' ? { tracestate } : {}),
    };
  });
}

/** The request's span of `name` (its inferq.request.id), once exported. */
function spanOf(otlp: OtlpReceiver, name: string, id: string): Promise<ReceivedSpan> {
  return eventually(() =>
    otlp.spans.find((s) => s.name === name && s.attributes['inferq.request.id'] === id),
  );
}

describe('with tracing on (OTEL_EXPORTER_OTLP_ENDPOINT)', () => {
  let app: AllInOne;
  let otlp: OtlpReceiver;

  beforeAll(async () => {
    otlp = await startOtlpReceiver();
    app = await startAllInOne({ env: environment({ OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint }) });
  });

  afterAll(async () => {
    await app?.stop();
    await otlp?.close();
  });

  it('exports accept, queue wait, inference and a linked batch span in the caller trace, and the webhook continues it', async () => {
    const traceId = hex(16);
    const callerSpan = hex(8);
    const { status, id } = await submit(app, {
      traceparent: `00-${traceId}-${callerSpan}-01`,
      tracestate: 'vendor=opaque',
    });
    expect(status).toBe(202);

    const accept = await spanOf(otlp, 'inferq.accept', id);
    expect(accept).toMatchObject({
      service: 'inferq-api',
      traceId,
      parentSpanId: callerSpan,
      kind: 2,
      attributes: { 'inferq.model': 'echo', 'inferq.model.version': 1, 'inferq.outcome': 'queued' },
    });
    const queueWait = await spanOf(otlp, 'inferq.queue_wait', id);
    expect(queueWait).toMatchObject({ service: 'inferq-worker', traceId, parentSpanId: accept.spanId });
    const inference = await spanOf(otlp, 'inferq.inference', id);
    expect(inference).toMatchObject({
      service: 'inferq-worker',
      traceId,
      parentSpanId: accept.spanId,
      attributes: { 'inferq.model': 'echo', 'inferq.batch.size': 1 },
    });
    // The batch is a trace of its own, linked to each request it ran; the inference links it back.
    const batch = await eventually(() =>
      otlp.spans.find(
        (s) => s.name === 'inferq.batch' && s.links.some((l) => l.attributes['inferq.request.id'] === id),
      ),
    );
    expect(batch).toMatchObject({ service: 'inferq-worker', parentSpanId: '', kind: 5 });
    expect(batch.traceId).not.toBe(traceId);
    expect(batch.links).toContainEqual({
      traceId,
      spanId: accept.spanId,
      attributes: { 'inferq.request.id': id },
    });
    expect(inference.links).toEqual([{ traceId: batch.traceId, spanId: batch.spanId, attributes: {} }]);
    expect(queueWait.endTimeUnixNano).toBeLessThanOrEqual(inference.startTimeUnixNano);

    // The webhook carries the request's context: its trace, the accept span as parent, the tracestate.
    expect(await webhookOf(id)).toEqual({
      traceparent: `00-${traceId}-${accept.spanId}-01`,
      tracestate: 'vendor=opaque',
    });
  });

  it('starts a new trace for a request without a traceparent, or with a malformed one, and never refuses it', async () => {
    const cases: Record<string, string>[] = [
      {},
      { traceparent: '00-not-a-trace-context' },
      { traceparent: `00-${'0'.repeat(32)}-${hex(8)}-01` },
    ];
    for (const headers of cases) {
      const { status, id } = await submit(app, headers);
      expect(status).toBe(202);
      const accept = await spanOf(otlp, 'inferq.accept', id);
      expect(accept.parentSpanId).toBe('');
      expect(accept.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect((await spanOf(otlp, 'inferq.inference', id)).traceId).toBe(accept.traceId);
      expect(await webhookOf(id)).toEqual({ traceparent: `00-${accept.traceId}-${accept.spanId}-01` });
    }
  });

  it('gives an infer:bulk body one accept span, the parent of each of its requests', async () => {
    const traceId = hex(16);
    const response = await fetch(`${app.url}/v1/models/echo/infer:bulk`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-${hex(8)}-01` },
      body: JSON.stringify({
        requests: [1, 2].map((n) => ({
          inputs: { x: { dtype: 'float32', shape: [1, 4], data: [Math.random(), n, 0, 0] } },
        })),
      }),
    });
    expect(response.status).toBe(202);
    const { ids } = (await response.json()) as { ids: string[] };
    const accept = await eventually(() =>
      otlp.spans.find((s) => s.name === 'inferq.accept' && s.traceId === traceId),
    );
    expect(accept.attributes).toMatchObject({ 'inferq.model': 'echo', 'inferq.bulk.requests': 2 });
    for (const id of ids) {
      expect(await spanOf(otlp, 'inferq.inference', id)).toMatchObject({
        traceId,
        parentSpanId: accept.spanId,
      });
    }
  });

  it("makes a pipeline's model steps children of the pipeline request's run", async () => {
    const traceId = hex(16);
    const { status, id } = await submit(
      app,
      { traceparent: `00-${traceId}-${hex(8)}-01` },
      undefined,
      'chain',
    );
    expect(status).toBe(202);
    const accept = await spanOf(otlp, 'inferq.accept', id);
    expect(accept).toMatchObject({ traceId, attributes: { 'inferq.model': 'chain' } });
    expect(await spanOf(otlp, 'inferq.queue_wait', id)).toMatchObject({
      traceId,
      parentSpanId: accept.spanId,
    });
    const run = await spanOf(otlp, 'inferq.pipeline', id);
    expect(run).toMatchObject({ service: 'inferq-worker', traceId, parentSpanId: accept.spanId });
    // The model step is a request of its own, in the same trace, under the pipeline's run.
    const step = await eventually(() =>
      otlp.spans.find((s) => s.name === 'inferq.inference' && s.traceId === traceId),
    );
    expect(step).toMatchObject({ parentSpanId: run.spanId, attributes: { 'inferq.model': 'echo' } });
    expect(step.attributes['inferq.request.id']).not.toBe(id);
    await webhookOf(id);
  });

  it('links a coalesced request to its leader, and gives it no worker spans of its own', async () => {
    const redis = new Redis(app.redis!.url);
    const queue = testQueue(new RequestStore({ redis, prefix: '{inferq}', resultTtlSeconds: 60 }));
    const values = [Math.random(), 5, 5, 5];
    const leaderTrace = hex(16);
    const followerTrace = hex(16);
    try {
      // Paused, the identical second request finds the first one still in flight.
      await queue.pause('echo', 1);
      const leader = await submit(app, { traceparent: `00-${leaderTrace}-${hex(8)}-01` }, values);
      const follower = await submit(app, { traceparent: `00-${followerTrace}-${hex(8)}-01` }, values);
      await queue.resume('echo', 1);
      const leaderAccept = await spanOf(otlp, 'inferq.accept', leader.id);
      const followerAccept = await spanOf(otlp, 'inferq.accept', follower.id);
      expect(followerAccept).toMatchObject({
        traceId: followerTrace,
        attributes: { 'inferq.outcome': 'coalesced' },
      });
      expect(followerAccept.links).toEqual([
        { traceId: leaderTrace, spanId: leaderAccept.spanId, attributes: {} },
      ]);
      expect(await webhookOf(follower.id)).toEqual({
        traceparent: `00-${followerTrace}-${followerAccept.spanId}-01`,
      });
      // The run is the leader's, in the leader's trace.
      expect((await spanOf(otlp, 'inferq.inference', leader.id)).traceId).toBe(leaderTrace);
      await webhookOf(leader.id);
      expect(otlp.spans.filter((s) => s.traceId === followerTrace).map((s) => s.name)).toEqual([
        'inferq.accept',
      ]);
    } finally {
      await queue.close();
      redis.disconnect();
    }
  });

  it('gives a cache hit its own accept span and webhook, and no worker spans', async () => {
    const values = [Math.random(), 7, 8, 9];
    const first = await submit(app, {}, values);
    await webhookOf(first.id);
    const traceId = hex(16);
    const hit = await submit(app, { traceparent: `00-${traceId}-${hex(8)}-01` }, values);
    expect(hit.status).toBe(200);
    const accept = await spanOf(otlp, 'inferq.accept', hit.id);
    expect(accept).toMatchObject({ traceId, attributes: { 'inferq.outcome': 'cached' } });
    expect(await webhookOf(hit.id)).toEqual({ traceparent: `00-${traceId}-${accept.spanId}-01` });
    // The worker never saw it: its trace holds the accept span alone.
    await spanOf(otlp, 'inferq.inference', first.id);
    expect(otlp.spans.filter((s) => s.traceId === traceId).map((s) => s.name)).toEqual(['inferq.accept']);
  });
});

describe('with tracing off', () => {
  it('exports nothing, and the webhook carries the caller context as it came', async () => {
    const otlp = await startOtlpReceiver();
    // An endpoint is set, and OTEL_SDK_DISABLED turns tracing off all the same.
    const app = await startAllInOne({
      env: environment({ OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint, OTEL_SDK_DISABLED: 'true' }),
    });
    try {
      const traceparent = `00-${hex(16)}-${hex(8)}-01`;
      const { status, id } = await submit(app, { traceparent, tracestate: 'a=1,b=2' });
      expect(status).toBe(202);
      expect(await webhookOf(id)).toEqual({ traceparent, tracestate: 'a=1,b=2' });
      const unsampled = `00-${hex(16)}-${hex(8)}-00`;
      const second = await submit(app, { traceparent: unsampled });
      expect(await webhookOf(second.id)).toEqual({ traceparent: unsampled });
      const none = await submit(app, {});
      expect(await webhookOf(none.id)).toEqual({});
    } finally {
      // A stopping process flushes its spans: had it any, they would have been sent by now.
      await app.stop();
    }
    expect(otlp.requests).toBe(0);
    await otlp.close();
  });
});
