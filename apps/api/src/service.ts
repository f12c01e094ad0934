/**
 * What the API does, free of HTTP: submit a request, read, wait for, cancel and follow one, describe
 * the models and the readiness of the deployment. Routes in server.ts only translate HTTP to these
 * calls and their results back.
 */
import type { Config } from '@inferq/config';
import type { Logger, Metrics } from '@inferq/observability';
import {
  batchShapeOf,
  CallbackRefusedError,
  type CompletionMessage,
  ConflictError,
  cacheKey,
  checkBulkRequest,
  DEFAULT_INPUT_LIMITS,
  decodeBulkInferRequest,
  decodeCompletionMessage,
  decodeInferRequest,
  encodePayload,
  encodeRecord,
  encodeRecordFromCompletionMessage,
  formatBatchShape,
  type InferqError,
  type InferRequestBody,
  type InputLimits,
  type ModelDescription,
  NotFoundError,
  newRequestId,
  type Problem,
  type RequestRecord,
  type RequestStatus,
  TERMINAL_STATUSES,
  type TensorSpec,
  toProblem,
  validateInputs,
  type WireFormat,
} from '@inferq/protocol';
import type {
  Admission,
  CompletionHead,
  CompletionWatcher,
  RequestStore,
  StoredRecord,
  SubmitOutcome,
  SubmitParams,
} from '@inferq/store';
import { CallbackUrlCheck } from '@inferq/webhooks';
import { type ModelCatalog, NO_LIVE_WORKER, type Servable } from './catalog.ts';
import { rejectionError } from './errors.ts';
import { submissionFingerprint } from './idempotency.ts';
import { Wakeup } from './wakeup.ts';

/** One version of a model as the API needs it: the repository's entry. */
export type ServedModel = Servable;

export interface InferenceServiceDeps {
  config: Pick<Config, 'maxWaitSeconds' | 'limits' | 'webhooks'>;
  store: RequestStore;
  watcher: CompletionWatcher;
  catalog: ModelCatalog;
  metrics: Metrics;
  logger: Logger;
  /** Aborted when the process stops: waits answer at once with the state they have. */
  shutdownSignal?: AbortSignal;
  inputLimits?: InputLimits;
  /** Requests in one `infer:bulk` body; default: no cap. */
  maxBulkRequests?: number;
  now?: () => number;
  /** How often a status stream re-reads the record, in case a pub/sub message was lost. */
  recheckIntervalMs?: number;
}

export interface SubmitInput {
  model: string;
  /** undefined: the model's default (highest) version. */
  version: number | undefined;
  body: Uint8Array;
  format: WireFormat;
  tenant: string;
  /** Seconds to wait for a terminal state before answering (`Prefer: wait=N`); clamped to the maximum. */
  waitSeconds: number;
  /** Aborted when the client goes away. */
  signal?: AbortSignal;
  /** `Idempotency-Key` (see idempotency.ts): replays the tenant's earlier request with the same key. */
  idempotencyKey?: string;
}

/** A request of a bulk body that admission control refused, as problem details plus its index. */
export interface BulkRejection extends Problem {
  index: number;
  retryAfterSeconds?: number;
}

export interface BulkSubmitResult {
  /** One per request, in order; `null` where the request was refused (see `rejected`). */
  ids: (string | null)[];
  rejected?: BulkRejection[];
}

interface TerminalSubscription {
  live: Promise<() => Promise<void>>;
  wakeup: Wakeup;
  /** The terminal completion message, once one arrived. */
  completion(): Announcement | undefined;
  release(): void;
}

/** A request's end as a waiter heard of it. */
interface Announcement {
  head: CompletionHead;
  /** The message's bytes, as this process's notify channel delivers it (outputs undecoded). */
  message?: Buffer;
  /** The whole message, as a per-request subscription delivers it. */
  decoded?: CompletionMessage;
}

/**
 * Answer of a submission: the full record when it is already finished (`announced`: finished, and
 * answered from its completion message, encoded on demand), else where to find it.
 */
export type SubmitResult =
  | { kind: 'finished'; record: RequestRecord }
  | { kind: 'announced'; encode(format: WireFormat): Uint8Array }
  | { kind: 'accepted'; accepted: { id: string; status: RequestStatus; model: string; version: number } };

/** One event of a status stream: each status change, then the terminal one with the full record. */
export type StatusEvent =
  | { kind: 'status'; id: string; status: RequestStatus }
  | { kind: 'terminal'; record: RequestRecord };

export interface Readiness {
  ready: boolean;
  redis: 'ok' | 'unreachable';
  /** Each model's default version and its state. */
  models: { name: string; version: number; state: string; liveWorkers: number }[];
  /** Human-readable reasons the deployment is not ready; empty when ready. */
  missing: string[];
  /** Versions that cannot be served, with the reason (they do not hold readiness back). */
  unavailable: { name: string; version: number; reason: string }[];
}

const READINESS_PING_TIMEOUT_MS = 2_000;
const DEFAULT_RECHECK_INTERVAL_MS = 15_000;
/** How long after a queued request's deadline its waiters look again (see untilDeadline). */
const DEADLINE_SLACK_MS = 5;

export class InferenceService {
  private readonly deps: InferenceServiceDeps;
  private readonly now: () => number;
  private readonly inputLimits: InputLimits;
  private readonly maxBulkRequests: number;
  private readonly callbackCheck: CallbackUrlCheck;

  constructor(deps: InferenceServiceDeps) {
    this.deps = deps;
    this.callbackCheck = new CallbackUrlCheck(deps.config.webhooks);
    this.now = deps.now ?? Date.now;
    this.inputLimits = deps.inputLimits ?? DEFAULT_INPUT_LIMITS;
    this.maxBulkRequests = deps.maxBulkRequests ?? Number.POSITIVE_INFINITY;
  }

  /** Validates and submits one request; waits for its result when asked to. */
  async submit(input: SubmitInput): Promise<SubmitResult> {
    const { store, metrics } = this.deps;
    const model = this.resolveModel(input.model, input.version);
    const labels = { model: model.name };
    let body: ReturnType<typeof decodeInferRequest>;
    let batchShape: string | undefined;
    try {
      body = decodeInferRequest(input.body, input.format, this.inputLimits);
      validateInputs(body, model.signature);
      batchShape = batchShapeFor(body, model);
      this.checkCallbackUrl(body);
    } catch (error: unknown) {
      metrics.requests.inc({ ...labels, status: 'rejected' });
      throw error;
    }

    const now = this.now();
    const id = newRequestId();
    const useCache = usesCache(body, model);
    const waitMs = this.clampWaitSeconds(input.waitSeconds) * 1000;
    const waiter = waitMs > 0 ? await this.awaitEnd(id) : undefined;
    let outcome: Awaited<ReturnType<RequestStore['submit']>>;
    try {
      outcome = await store.submit({
        // A MessagePack body is already a payload the worker can read (it ignores the other fields):
        // stored as received, it is not encoded a second time.
        ...submitParams(
          id,
          model,
          body,
          input.tenant,
          now,
          batchShape,
          input.format === 'msgpack' ? input.body : undefined,
        ),
        ...(waiter?.notify !== undefined ? { notify: waiter.notify } : {}),
        admission: this.admission(input),
      });
    } catch (error: unknown) {
      waiter?.release();
      throw error;
    }

    if (outcome.kind === 'rejected' || outcome.kind === 'replayed') {
      waiter?.release();
      metrics.requests.inc({
        ...labels,
        status: outcome.kind === 'rejected' ? outcome.rejection.reason : 'replayed',
      });
      if (outcome.kind === 'rejected') {
        throw rejectionError(outcome.rejection, {
          model: model.name,
          version: model.version,
          tenant: input.tenant,
        });
      }
      return this.replay(outcome.record, input);
    }
    this.countAccepted(labels, outcome.kind, useCache);
    if (outcome.kind === 'cached') {
      waiter?.release();
      return { kind: 'finished', record: outcome.record };
    }

    let status: RequestStatus = 'queued';
    if (waiter !== undefined) {
      try {
        if (waiter.unsure) {
          // The notify channel was not subscribed yet (Redis just came up): an end announced before
          // it was is only in the record.
          await this.deps.watcher.ready();
          const early = await this.deps.store.get(id);
          if (early !== undefined && TERMINAL_STATUSES.has(early.status))
            return { kind: 'finished', record: early };
        }
        await waiter.wakeup.wait(waitMs, this.withShutdown(input.signal));
        const done = waiter.completion();
        if (outcome.kind === 'queued' && done?.head.finishedAt !== undefined) {
          // Everything else on the record is what this call just wrote: no need to read it back.
          const known = { tenant: input.tenant, createdAt: now, metadata: body.metadata };
          return answerFromCompletion(done, known);
        }
        const record = await this.deps.store.get(id);
        if (record !== undefined && TERMINAL_STATUSES.has(record.status)) return { kind: 'finished', record };
        if (record !== undefined) status = record.status;
      } finally {
        waiter.release();
      }
    }
    return { kind: 'accepted', accepted: { id, status, model: model.name, version: model.version } };
  }

  /**
   * Validates every request of an `infer:bulk` body, then submits them together: one pipelined write
   * of submit scripts and one job per batch of queued requests. Answers their ids in order; a
   * request refused by admission control (queue full, rate limit) has `null` in its place and an
   * entry in `rejected`. When every request is refused, the first refusal is thrown (429).
   */
  async submitBulk(input: Omit<SubmitInput, 'waitSeconds' | 'idempotencyKey'>): Promise<BulkSubmitResult> {
    const { store, metrics } = this.deps;
    const model = this.resolveModel(input.model, input.version);
    const labels = { model: model.name };
    let bodies: InferRequestBody[];
    let batchShapes: (string | undefined)[];
    try {
      bodies = decodeBulkInferRequest(input.body, input.format, this.inputLimits, this.maxBulkRequests);
      batchShapes = bodies.map((body, index) =>
        checkBulkRequest(index, () => {
          validateInputs(body, model.signature);
          this.checkCallbackUrl(body);
          return batchShapeFor(body, model);
        }),
      );
    } catch (error: unknown) {
      metrics.requests.inc({ ...labels, status: 'rejected' }, 1);
      throw error;
    }
    const now = this.now();
    const admission = this.admission({ ...input, waitSeconds: 0 });
    const params = bodies.map((body, index) => ({
      ...submitParams(newRequestId(), model, body, input.tenant, now, batchShapes[index]),
      admission,
    }));
    const outcomes = await store.submitBulk(params);
    const ids: (string | null)[] = [];
    const rejected: BulkRejection[] = [];
    let firstRefusal: Error | undefined;
    outcomes.forEach((outcome, index) => {
      if (outcome.kind === 'rejected') {
        const error = rejectionError(outcome.rejection, {
          model: model.name,
          version: model.version,
          tenant: input.tenant,
        });
        firstRefusal ??= error;
        metrics.requests.inc({ ...labels, status: outcome.rejection.reason });
        ids.push(null);
        rejected.push({ index, ...toProblem(error), ...retryAfterOf(error) });
        return;
      }
      this.countAccepted(labels, outcome.kind, params[index]!.useCache);
      ids.push(params[index]!.id);
    });
    if (firstRefusal !== undefined && rejected.length === outcomes.length) throw firstRefusal;
    return rejected.length === 0 ? { ids } : { ids, rejected };
  }

  /** Counts an accepted submission by outcome, and as a cache hit or miss when it used the cache. */
  private countAccepted(
    labels: { model: string },
    kind: Exclude<SubmitOutcome['kind'], 'rejected'>,
    usedCache: boolean,
  ): void {
    const { metrics } = this.deps;
    metrics.requests.inc({ ...labels, status: kind });
    if (usedCache) (kind === 'cached' ? metrics.cacheHits : metrics.cacheMisses).inc(labels);
    if (kind === 'coalesced') metrics.coalesced.inc(labels);
  }

  /** The record of one of the tenant's requests; with `waitSeconds`, long-polls for a terminal state. */
  async getRecord(id: string, tenant: string, waitSeconds = 0, signal?: AbortSignal): Promise<RequestRecord> {
    const waitMs = this.clampWaitSeconds(waitSeconds) * 1000;
    return waitMs > 0 ? this.waitForTerminal(id, tenant, waitMs, signal) : this.readOwn(id, tenant);
  }

  /** Cancels a request that has not started: the cancelled record, 409 once it runs or ended, 404 if unknown. */
  async cancel(id: string, tenant: string): Promise<RequestRecord> {
    await this.readOwn(id, tenant);
    const outcome = await this.deps.store.cancel(id, this.now());
    switch (outcome) {
      case 'cancelled':
        return this.readOwn(id, tenant);
      case 'conflict': {
        const record = await this.deps.store.get(id);
        throw new ConflictError(
          `request ${id} is ${record?.status ?? 'no longer queued'}; only a queued request can be cancelled`,
        );
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
    emit: (event: StatusEvent) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const { watcher, store } = this.deps;
    const abort = this.withShutdown(signal);
    const changes: RequestStatus[] = [];
    const wakeup = new Wakeup();
    // Subscribe before the first read: a change between the two is then queued, not lost.
    const unsubscribe = await watcher.watch(id, (status) => {
      changes.push(status);
      wakeup.wake();
    });
    try {
      let record = await this.readOwn(id, tenant);
      let last = record.status;
      if (TERMINAL_STATUSES.has(last)) {
        emit({ kind: 'terminal', record });
        return;
      }
      emit({ kind: 'status', id, status: last });
      const recheckMs = this.deps.recheckIntervalMs ?? DEFAULT_RECHECK_INTERVAL_MS;
      for (;;) {
        const outcome = await wakeup.wait(this.untilDeadline(record, recheckMs), abort);
        if (outcome === 'aborted') return;
        const statuses = outcome === 'woken' ? changes.splice(0) : [];
        if (outcome === 'timeout') {
          // Pub/sub is at-most-once: the record is the source of truth.
          record = (await store.get(id)) ?? record;
          statuses.push(record.status);
        }
        for (const status of statuses) {
          if (TERMINAL_STATUSES.has(status)) {
            const final = (await store.get(id)) ?? record;
            emit(
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
      await this.quietly(unsubscribe, id);
    }
  }

  listModels(): ModelDescription[] {
    return this.deps.catalog.modelNames().map((name) => this.describe(name));
  }

  describeModel(name: string): ModelDescription {
    return this.describe(name);
  }

  /**
   * Ready when Redis answers and every model that can be served has its default version ready on a
   * live worker. A model none of whose versions can load (every one `unavailable` for a reason of its
   * own) does not hold readiness back: its requests are refused with 503 and the reason, and
   * `unavailable` lists it.
   */
  async readiness(redisHealthy?: () => boolean): Promise<Readiness> {
    const { store, catalog } = this.deps;
    try {
      if (redisHealthy !== undefined && !redisHealthy()) throw new Error('connection not ready');
      await withTimeout(store.ping(), READINESS_PING_TIMEOUT_MS);
    } catch (error: unknown) {
      this.deps.logger.debug({ err: error }, 'readiness: Redis unreachable');
      return {
        ready: false,
        redis: 'unreachable',
        models: [],
        missing: ['Redis is unreachable'],
        unavailable: [],
      };
    }
    const models: Readiness['models'] = [];
    const missing: string[] = [];
    const unavailable: Readiness['unavailable'] = [];
    for (const name of catalog.modelNames()) {
      const versions = catalog.versions(name) ?? [];
      const chosen = catalog.defaultVersion(name);
      if (chosen === undefined) continue;
      models.push({ name, version: chosen.version, state: chosen.state, liveWorkers: chosen.liveWorkers });
      for (const v of versions) {
        if (v.state === 'unavailable' && v.reason !== NO_LIVE_WORKER) {
          unavailable.push({ name, version: v.version, reason: v.reason ?? '' });
        }
      }
      const broken = versions.every(
        (v) => v.state === 'retired' || (v.state === 'unavailable' && v.reason !== NO_LIVE_WORKER),
      );
      if (chosen.state !== 'ready' && !broken) {
        missing.push(
          `model ${name} version ${chosen.version} is ${chosen.state}${chosen.reason ? ` (${chosen.reason})` : ''}`,
        );
      }
    }
    if (models.length === 0) missing.push('the model repository holds no model');
    return { ready: missing.length === 0, redis: 'ok', models, missing, unavailable };
  }

  /** Jobs waiting or running per model (all served versions), for `inferq_queue_depth`. */
  async queueDepths(): Promise<[string, number][]> {
    const { store, catalog } = this.deps;
    return Promise.all(
      catalog.modelNames().map(async (name): Promise<[string, number]> => {
        const versions = (catalog.versions(name) ?? []).filter((v) => v.state !== 'retired');
        const depths = await Promise.all(versions.map((v) => store.queueDepth(name, v.version)));
        return [name, depths.reduce((sum, depth) => sum + depth, 0)];
      }),
    );
  }

  private describe(name: string): ModelDescription {
    const { catalog } = this.deps;
    const versions = catalog.versions(name);
    const chosen = catalog.defaultVersion(name);
    if (versions === undefined || chosen === undefined) throw notFoundModel(name);
    const model = chosen.model;
    return {
      name,
      versions: versions.filter((v) => v.state !== 'retired').map((v) => v.version),
      defaultVersion: chosen.version,
      version: chosen.version,
      inputs: model?.signature.inputs.map(copySpec) ?? [],
      outputs: model?.signature.outputs.map(copySpec) ?? [],
      batching: {
        maxBatchSize: model?.config.maxBatchSize ?? 0,
        maxBatchDelayMs: model?.config.maxBatchDelayMs ?? 0,
      },
      executionProvider: chosen.state === 'ready' ? chosen.providers.join(',') || null : null,
      configuredProviders: [...(model?.config.executionProviders ?? [])],
      cache: {
        enabled: model?.config.cache.enabled ?? false,
        ttlSeconds: model?.config.cache.ttlSeconds ?? 0,
      },
      ready: chosen.state === 'ready',
      versionStates: versions.map(({ model: _model, ...status }) => status),
    };
  }

  private resolveModel(name: string, version: number | undefined): ServedModel {
    return this.deps.catalog.resolve(name, version);
  }

  /**
   * Race-free wait: subscribe first, then read the record, then wait for the terminal notification
   * or the deadline, and read the record again (it, not the message, is the answer).
   */
  private async waitForTerminal(
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
        const outcome = await subscription.wakeup.wait(
          this.untilDeadline(record, left),
          this.withShutdown(signal),
        );
        record = (await this.deps.store.get(id)) ?? record;
        if (outcome !== 'timeout') break;
      }
      return record;
    } finally {
      subscription.release();
    }
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

  /** The submit script's checks for one submission, from the configuration. */
  private admission(input: SubmitInput): Admission {
    const { limits } = this.deps.config;
    const admission: Admission = { maxQueueDepth: limits.maxQueueDepth };
    if (limits.rateLimitPerSecond > 0) {
      admission.rateLimit = { perSecond: limits.rateLimitPerSecond, burst: limits.rateLimitBurst };
    }
    if (input.idempotencyKey !== undefined) {
      admission.idempotency = {
        key: input.idempotencyKey,
        fingerprint: submissionFingerprint(input),
        ttlSeconds: limits.idempotencyTtlSeconds,
      };
    }
    return admission;
  }

  /**
   * The answer to a replayed `Idempotency-Key`, shaped as the first one was: the record once the
   * request has finished (after waiting, when the client asks to), else its id and current status.
   */
  private async replay(first: StoredRecord, input: SubmitInput): Promise<SubmitResult> {
    let record = first;
    const waitMs = this.clampWaitSeconds(input.waitSeconds) * 1000;
    if (!TERMINAL_STATUSES.has(record.status)) {
      record =
        waitMs > 0
          ? await this.waitForTerminal(record.id, input.tenant, waitMs, input.signal)
          : ((await this.deps.store.get(record.id)) ?? record);
    }
    if (TERMINAL_STATUSES.has(record.status)) return { kind: 'finished', record };
    return {
      kind: 'accepted',
      accepted: { id: record.id, status: record.status, model: record.model, version: record.version },
    };
  }

  /**
   * Gets ready to hear of the end of a request about to be submitted with `Prefer: wait`: on this
   * process's notify channel (the record names it in `notify`, no Redis command), or, for a watcher
   * without one, on the request's own done channel, subscribed before the submit so nothing is missed.
   */
  private async awaitEnd(id: string): Promise<TerminalSubscription & { notify?: string; unsure?: boolean }> {
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
    const release = watcher.expect(id, (head, message) => {
      if (!TERMINAL_STATUSES.has(head.status)) return;
      terminal ??= { head, message };
      wakeup.wake();
    });
    return {
      live: Promise.resolve(async () => undefined),
      wakeup,
      completion: () => terminal,
      release,
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
    return {
      live,
      wakeup,
      completion: () => terminal,
      release: () => {
        live.then(
          (unsubscribe) => this.quietly(unsubscribe, id),
          () => undefined,
        );
      },
    };
  }

  /** The record, or 404 when it does not exist or belongs to another tenant (indistinguishable on purpose). */
  private async readOwn(id: string, tenant: string): Promise<StoredRecord> {
    const record = await this.deps.store.get(id);
    if (record === undefined || record.tenant !== tenant) throw notFoundRequest(id);
    return record;
  }

  /** A webhook this deployment would not deliver is refused now, not after the request has run. */
  private checkCallbackUrl(body: InferRequestBody): void {
    const url = body.callback?.url;
    if (url === undefined) return;
    const refusal = this.callbackCheck.refusalOf(url);
    if (refusal !== undefined) throw new CallbackRefusedError(`callback.url ${refusal}`);
  }

  private clampWaitSeconds(seconds: number): number {
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

function usesCache(body: InferRequestBody, model: ServedModel): boolean {
  return body.cache !== false && model.config.cache.enabled;
}

/**
 * The rows and non-batch dims of validated inputs, for the worker's batcher (none for a model that
 * does not batch). Throws a 422 when the inputs disagree on their batch axis.
 */
function batchShapeFor(body: InferRequestBody, model: ServedModel): string | undefined {
  if (model.config.maxBatchSize === 0) return undefined;
  return formatBatchShape(batchShapeOf(body.inputs, model.signature));
}

/** What the store needs for one validated request, before admission control. */
function submitParams(
  id: string,
  model: ServedModel,
  body: InferRequestBody,
  tenant: string,
  now: number,
  batchShape: string | undefined,
  encodedPayload?: Uint8Array,
): SubmitParams {
  return {
    id,
    model: model.name,
    version: model.version,
    tenant,
    cacheKey: cacheKey({
      tenant,
      model: model.name,
      version: model.version,
      outputs: body.outputs,
      inputs: body.inputs,
    }),
    useCache: usesCache(body, model),
    cacheTtlSeconds: model.config.cache.ttlSeconds,
    payload: encodedPayload ?? encodePayload({ inputs: body.inputs, outputs: body.outputs }),
    batchShape,
    priority: body.priority,
    deadline: body.timeoutMs === undefined ? undefined : now + body.timeoutMs,
    callbackChannel: body.callback?.channel,
    callbackUrl: body.callback?.url,
    metadata: body.metadata,
    now,
  };
}

function retryAfterOf(error: InferqError): { retryAfterSeconds?: number } {
  return error.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: error.retryAfterSeconds };
}

/** The record of a request this process submitted, from its completion message and what it wrote. */
function recordFromCompletion(
  done: CompletionMessage | CompletionHead,
  known: { tenant: string; createdAt: number; metadata: Record<string, unknown> | undefined },
): StoredRecord {
  const record: StoredRecord = {
    id: done.id,
    model: done.model,
    version: done.version,
    status: done.status,
    cached: done.cached,
    createdAt: new Date(known.createdAt).toISOString(),
    timings: done.timings,
    tenant: known.tenant,
  };
  if (done.startedAt !== undefined) record.startedAt = done.startedAt;
  if (done.finishedAt !== undefined) record.finishedAt = done.finishedAt;
  if (done.batchSize !== undefined) record.batchSize = done.batchSize;
  if ('outputs' in done && done.outputs !== undefined) record.outputs = done.outputs;
  if (done.error !== undefined) record.error = done.error;
  if (known.metadata !== undefined) record.metadata = known.metadata;
  return record;
}

/**
 * The answer to a `Prefer: wait` submit that finished, from its completion message: MessagePack is
 * the message's bytes with the record's other fields added (the outputs are not decoded and encoded
 * again); JSON needs the decoded record.
 */
function answerFromCompletion(
  done: Announcement,
  known: { tenant: string; createdAt: number; metadata: Record<string, unknown> | undefined },
): SubmitResult {
  const { message, decoded } = done;
  if (message === undefined) {
    return { kind: 'finished', record: recordFromCompletion(decoded ?? done.head, known) };
  }
  return {
    kind: 'announced',
    encode: (format) =>
      format === 'msgpack'
        ? encodeRecordFromCompletionMessage(message, {
            createdAt: new Date(known.createdAt).toISOString(),
            ...(known.metadata === undefined ? {} : { metadata: known.metadata }),
          })
        : encodeRecord(recordFromCompletion(decodeCompletionMessage(message), known), format),
  };
}

function copySpec(spec: TensorSpec): TensorSpec {
  return { name: spec.name, dtype: spec.dtype, shape: [...spec.shape] };
}

function notFoundModel(name: string): NotFoundError {
  return new NotFoundError(`no model named '${name}'`);
}

function notFoundRequest(id: string): NotFoundError {
  return new NotFoundError(`no request with id '${id}'`);
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
