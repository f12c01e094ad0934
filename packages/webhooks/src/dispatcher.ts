/// <reference path="./raw-imports.d.ts" />
/**
 * Calls `callback.url` for every request that ended with one. Every script that writes a terminal
 * state with a callback URL adds the id to `<prefix>:webhooks` in the same step, so a webhook is
 * never lost between the result and its delivery; any number of dispatchers (one per worker) share
 * that set: each claims due entries atomically, POSTs the signed record, and removes the entry on a
 * 2xx, re-schedules it with backoff on a failure, or gives up after `maxAttempts` and says so on the
 * record, in a metric and in the log.
 */
import http from 'node:http';
import https from 'node:https';
import { type Logger, unpackTraceContext } from '@inferq/observability';
import { encodeRecord } from '@inferq/protocol';
import type { RedisConnection, RequestStore } from '@inferq/store';

import { Counter, type Registry } from 'prom-client';
import { type AttemptOutcome, postWebhook } from './deliver.ts';
import { DestinationGuard, type DestinationPolicy, type Resolver } from './destination.ts';
import claimLua from './lua/webhook-claim-1.lua?raw';
import settleLua from './lua/webhook-settle-2.lua?raw';
import { retryDelayMs } from './retry.ts';
import { signedHeaders } from './signature.ts';

/** What a dispatcher needs of the configuration (`Config['webhooks']` with a secret). */
export interface WebhookSettings extends DestinationPolicy {
  /** HMAC key: the decoded WEBHOOK_SECRET. */
  secret: Uint8Array;
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  timeoutMs: number;
}

export interface WebhookDispatcherOptions {
  /** Command connection; the dispatcher defines its scripts on it. */
  redis: RedisConnection;
  /** Reads the records it sends (same Redis and prefix). */
  store: RequestStore;
  settings: WebhookSettings;
  logger: Logger;
  /** Where `inferq_webhook_*` metrics go; none: not measured. */
  registry?: Registry;
  /** How often an idle dispatcher looks for due webhooks. */
  pollIntervalMs?: number;
  /** Most deliveries in flight at once in this process. */
  concurrency?: number;
  /** Name resolution (tests); default: the system resolver. */
  resolver?: Resolver;
  random?: () => number;
  now?: () => number;
}

/** Final outcome of one webhook, the label of `inferq_webhook_deliveries_total`. */
export type DeliveryOutcome = 'delivered' | 'failed' | 'refused' | 'expired';

interface ScriptCommands {
  inferqWebhookClaim(...args: (string | number)[]): Promise<[string, number, string][]>;
  inferqWebhookSettle(...args: (string | number)[]): Promise<number>;
}

type ScriptedRedis = RedisConnection & ScriptCommands;

interface DueWebhook {
  id: string;
  /** 1 for the first attempt. */
  attempt: number;
  /** Empty when the record is gone. */
  url: string;
}

const USER_AGENT = 'inferq-webhooks/1';

export class WebhookDispatcher {
  private readonly redis: ScriptedRedis;
  private readonly options: WebhookDispatcherOptions;
  private readonly settings: WebhookSettings;
  private readonly guard: DestinationGuard;
  private readonly agents = {
    http: new http.Agent({ keepAlive: true }),
    https: new https.Agent({ keepAlive: true }),
  };
  private readonly webhooksKey: string;
  private readonly leaseMs: number;
  private readonly pollIntervalMs: number;
  private readonly concurrency: number;
  private readonly now: () => number;
  private readonly deliveries: Counter<'outcome'> | undefined;
  private readonly attempts: Counter<'result'> | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = true;
  /** Set while claims fail (Redis down): logged once, not every poll. */
  private claimError: string | undefined;

  constructor(options: WebhookDispatcherOptions) {
    this.options = options;
    this.settings = options.settings;
    this.guard = new DestinationGuard(options.settings, options.resolver);
    this.webhooksKey = options.store.keys.webhooks;
    // Longer than any attempt can take (the DNS lookup and the request share the timeout), so an
    // entry comes back to another dispatcher only when this one is gone.
    this.leaseMs = 2 * options.settings.timeoutMs + 10_000;
    this.pollIntervalMs = options.pollIntervalMs ?? 250;
    this.concurrency = options.concurrency ?? 32;
    this.now = options.now ?? Date.now;
    options.redis.defineCommand('inferqWebhookClaim', { numberOfKeys: 1, lua: claimLua });
    options.redis.defineCommand('inferqWebhookSettle', { numberOfKeys: 2, lua: settleLua });
    this.redis = options.redis as ScriptedRedis;
    if (options.registry) {
      this.deliveries = counter(options.registry, {
        name: 'inferq_webhook_deliveries_total',
        help: 'Webhooks settled, by outcome: delivered, failed (gave up), refused (destination not allowed), expired (record gone).',
        labelNames: ['outcome'],
      });
      this.attempts = counter(options.registry, {
        name: 'inferq_webhook_attempts_total',
        help: 'Webhook delivery attempts, by result: 2xx, 3xx, 4xx, 5xx, timeout, error, refused.',
        labelNames: ['result'],
      });
    }
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops claiming and waits for the deliveries in flight (each is bounded by the timeout). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking;
    await Promise.allSettled([...this.inFlight]);
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.ticking = this.tick().finally(() => {
        this.ticking = undefined;
      });
    }, delayMs);
  }

  private async tick(): Promise<void> {
    const free = this.concurrency - this.inFlight.size;
    let busy = false;
    if (free > 0) {
      try {
        const due = await this.claim(free);
        busy = due.length === free;
        for (const webhook of due) this.track(webhook);
        if (this.claimError !== undefined) this.options.logger.info('webhook claims work again');
        this.claimError = undefined;
      } catch (error: unknown) {
        const message = error instanceof Error ? error.message : String(error);
        if (message !== this.claimError) this.options.logger.warn({ err: error }, 'webhook claim failed');
        this.claimError = message;
      }
    }
    // A full claim means more may be due: look again at once.
    this.schedule(busy ? 0 : this.pollIntervalMs);
  }

  private async claim(limit: number): Promise<DueWebhook[]> {
    const rows = await this.redis.inferqWebhookClaim(
      this.webhooksKey,
      this.options.store.keys.prefix,
      this.now(),
      this.leaseMs,
      limit,
    );
    return rows.map(([id, attempt, url]) => ({ id: String(id), attempt: Number(attempt), url: String(url) }));
  }

  private track(webhook: DueWebhook): void {
    const delivery = this.deliver(webhook)
      .catch((error: unknown) => {
        // Redis failed us mid-way: the entry keeps its lease and is claimed again once it runs out.
        this.options.logger.warn({ err: error, id: webhook.id }, 'webhook delivery interrupted; will retry');
      })
      .finally(() => this.inFlight.delete(delivery));
    this.inFlight.add(delivery);
  }

  private async deliver({ id, attempt, url }: DueWebhook): Promise<void> {
    const { logger } = this.options;
    if (attempt > this.settings.maxAttempts) {
      // Attempts that never reached settle (dispatchers that died mid-way) count too: give up.
      await this.settle(id, 'failed', 0, `no result after ${attempt - 1} attempts`);
      this.deliveries?.inc({ outcome: 'failed' });
      logger.warn({ id, attempt, destination: originOf(url) }, 'webhook not delivered; giving up');
      return;
    }
    const record = url === '' ? undefined : await this.options.store.get(id);
    if (record === undefined) {
      await this.settle(id, 'failed', 0, 'the request record expired before the webhook was delivered');
      this.deliveries?.inc({ outcome: 'expired' });
      logger.warn({ id, attempt }, 'webhook dropped: the request record expired before delivery');
      return;
    }
    const body = encodeRecord(record, 'json');
    const headers = {
      ...signedHeaders(this.settings.secret, id, Math.floor(this.now() / 1000), body),
      'content-type': 'application/json',
      'user-agent': USER_AGENT,
      'inferq-delivery-attempt': String(attempt),
      // The request's W3C trace context: the receiver's work joins the trace that sent the request.
      ...(record.trace === undefined ? {} : unpackTraceContext(record.trace)),
    };
    const outcome = await postWebhook({
      url,
      body,
      headers,
      guard: this.guard,
      timeoutMs: this.settings.timeoutMs,
      agents: this.agents,
    });
    this.attempts?.inc({ result: attemptResult(outcome) });
    const context = { id, attempt, destination: originOf(url) };

    if (outcome.kind === 'delivered') {
      await this.settle(id, 'delivered', 0, '');
      this.deliveries?.inc({ outcome: 'delivered' });
      logger.debug({ ...context, status: outcome.status }, 'webhook delivered');
    } else if (outcome.permanent || attempt >= this.settings.maxAttempts) {
      await this.settle(id, 'failed', 0, outcome.error);
      this.deliveries?.inc({ outcome: outcome.permanent ? 'refused' : 'failed' });
      logger.warn({ ...context, error: outcome.error }, 'webhook not delivered; giving up');
    } else {
      const delayMs = retryDelayMs(
        attempt,
        { baseMs: this.settings.retryBaseMs, maxMs: this.settings.retryMaxMs },
        this.options.random,
      );
      await this.settle(id, 'retry', this.now() + delayMs, outcome.error);
      logger.info(
        { ...context, error: outcome.error, retryInMs: delayMs },
        'webhook attempt failed; will retry',
      );
    }
  }

  private async settle(
    id: string,
    outcome: 'delivered' | 'failed' | 'retry',
    retryAt: number,
    error: string,
  ): Promise<void> {
    await this.redis.inferqWebhookSettle(
      this.webhooksKey,
      this.options.store.keys.request(id),
      this.options.store.keys.prefix,
      id,
      outcome,
      retryAt,
      error,
    );
  }
}

function attemptResult(outcome: AttemptOutcome): string {
  if (outcome.kind === 'delivered') return '2xx';
  if (outcome.permanent) return 'refused';
  if (outcome.status !== undefined) return `${Math.floor(outcome.status / 100)}xx`;
  return outcome.error.startsWith('no answer within') ? 'timeout' : 'error';
}

/** Scheme, host and port only: the path and query of a callback URL may carry the receiver's tokens. */
function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return 'invalid URL';
  }
}

/** The registry's counter of that name, created once (several dispatchers may share a registry). */
function counter<L extends string>(
  registry: Registry,
  config: { name: string; help: string; labelNames: L[] },
): Counter<L> {
  const existing = registry.getSingleMetric(config.name);
  if (existing) return existing as Counter<L>;
  return new Counter<L>({ ...config, registers: [registry] });
}
