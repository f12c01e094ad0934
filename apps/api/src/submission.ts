/**
 * Submission: decode and validate a body against its model's signature, build what the queue needs,
 * submit it (one request, or an `infer:bulk` body), count the outcome, and, for `Prefer: wait`,
 * answer from the end's announcement when it comes within the wait.
 */
import { deadlineBound } from '@inferq/batcher';
import type { Config } from '@inferq/config';
import { type AcceptSpan, type Metrics, type Tracing, traceContextOfHeaders } from '@inferq/observability';
import {
  CallbackRefusedError,
  checkBulkRequest,
  DEFAULT_INPUT_LIMITS,
  decodeBulkInferRequest,
  decodeInferRequest,
  type InferqError,
  type InferRequestBody,
  type InputLimits,
  newRequestId,
  type Problem,
  type RequestRecord,
  type RequestStatus,
  TERMINAL_STATUSES,
  toProblem,
  UnsupportedMediaTypeError,
  validateInputs,
  type WireFormat,
} from '@inferq/protocol';
import type {
  Admission,
  CompletionWatcher,
  InferenceQueue,
  RequestStore,
  StoredRecord,
  SubmitOutcome,
} from '@inferq/store';
import { CallbackUrlCheck } from '@inferq/webhooks';
import { answerFromCompletion } from './announced-answer.ts';
import type { ModelCatalog, Servable } from './catalog.ts';
import { rejectionError } from './errors.ts';
import { bulkIdempotencyKey, submissionFingerprint } from './idempotency.ts';
import { imageBody } from './image-body.ts';
import { checkPipelineImages } from './pipeline-images.ts';
import { notFoundRequest, type RequestRecords } from './records.ts';
import { batchShapeFor, submitParams, usesCache } from './submit-params.ts';

/** One version of a model as the API needs it: the repository's entry. */
export type ServedModel = Servable;

export interface SubmissionDeps {
  config: Pick<Config, 'maxWaitSeconds' | 'limits' | 'webhooks'>;
  queue: InferenceQueue;
  store: RequestStore;
  watcher: CompletionWatcher;
  catalog: ModelCatalog;
  records: RequestRecords;
  metrics: Metrics;
  inputLimits?: InputLimits;
  /** Requests in one `infer:bulk` body; default: no cap. */
  maxBulkRequests?: number;
  now?: () => number;
  /** OpenTelemetry spans (an OTLP endpoint is configured); absent: tracing off. */
  tracing?: Tracing;
}

/** How a submit body is encoded: a wire format, or a raw image (`Content-Type: image/*`). */
export type BodyFormat = WireFormat | 'image';

export interface SubmitInput {
  model: string;
  /** undefined: the model's default (highest) version. */
  version: number | undefined;
  body: Uint8Array;
  /** The body's format; `image`: a raw image body (image-body.ts), for single submits only. */
  format: BodyFormat;
  tenant: string;
  /** Seconds to wait for a terminal state before answering (`Prefer: wait=N`); clamped to the maximum. */
  waitSeconds: number;
  /** Aborted when the client goes away. */
  signal?: AbortSignal;
  /** `Idempotency-Key` (see idempotency.ts): replays the tenant's earlier request with the same key. */
  idempotencyKey?: string;
  /** The W3C `traceparent` header as received; an invalid one is ignored (trace-context.ts). */
  traceparent?: string | undefined;
  /** The W3C `tracestate` header, read only with a valid traceparent. */
  tracestate?: string | undefined;
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

/**
 * Answer of a submission: the full record when it is already finished (`announced`: finished, and
 * answered from its completion message, encoded on demand), else where to find it.
 */
export type SubmitResult =
  | { kind: 'finished'; record: RequestRecord }
  | { kind: 'announced'; encode(format: WireFormat): Uint8Array }
  | { kind: 'accepted'; accepted: { id: string; status: RequestStatus; model: string; version: number } };

export class Submission {
  private readonly deps: SubmissionDeps;
  private readonly now: () => number;
  private readonly inputLimits: InputLimits;
  private readonly maxBulkRequests: number;
  private readonly callbackCheck: CallbackUrlCheck;

  constructor(deps: SubmissionDeps) {
    this.deps = deps;
    this.callbackCheck = new CallbackUrlCheck(deps.config.webhooks);
    this.now = deps.now ?? Date.now;
    this.inputLimits = deps.inputLimits ?? DEFAULT_INPUT_LIMITS;
    this.maxBulkRequests = deps.maxBulkRequests ?? Number.POSITIVE_INFINITY;
  }

  /**
   * Validates and submits one request; waits for its result when asked to. With tracing on, the
   * `inferq.accept` span covers the submission (not the wait) and its context travels with the
   * request; with tracing off, the caller's own context travels as it came.
   */
  submit(input: SubmitInput): Promise<SubmitResult> {
    if (this.deps.tracing === undefined) return this.submitOne(input, untraced(input));
    return this.traced(this.deps.tracing, input, (accept) => this.submitOne(input, accept));
  }

  /**
   * Runs a submission under its accept span (tracing on), ended once its requests are accepted (by
   * `accepted`) or, when it is refused or fails, here with its error.
   */
  private async traced<T>(
    tracing: Tracing,
    input: Omit<SubmitInput, 'waitSeconds'>,
    run: (accept: TracedSubmission) => Promise<T>,
  ): Promise<T> {
    const span = tracing.startAccept(incomingTrace(input), input.model);
    const accept: TracedSubmission = { span, trace: span.trace, error: undefined, ended: false };
    try {
      return await run(accept);
    } catch (error: unknown) {
      accept.error ??= error;
      throw error;
    } finally {
      if (!accept.ended) span?.end(accept.error);
    }
  }

  /** Says on the accept span what the submission became, and ends it unless it was refused. */
  private accepted(accept: TracedSubmission, outcome: SubmitOutcome, id: string, version: number): void {
    const span = accept.span;
    if (span === undefined) return;
    span.accepted({
      id: outcome.kind === 'replayed' ? outcome.record.id : id,
      version,
      outcome: outcome.kind === 'rejected' ? outcome.rejection.reason : outcome.kind,
      ...(outcome.kind === 'coalesced' && outcome.leaderTrace !== undefined
        ? { leaderTrace: outcome.leaderTrace }
        : {}),
    });
    // A refusal is thrown next, and ends the span with its error.
    if (outcome.kind === 'rejected') return;
    span.end();
    accept.ended = true;
  }

  private async submitOne(input: SubmitInput, accept: TracedSubmission): Promise<SubmitResult> {
    const { queue, metrics } = this.deps;
    const model = this.resolveModel(input.model, input.version);
    const labels = { model: model.name };
    let body: ReturnType<typeof decodeInferRequest>;
    let batchShape: string | undefined;
    try {
      body =
        input.format === 'image'
          ? imageBody(input.body, model, this.inputLimits)
          : decodeInferRequest(input.body, input.format, this.inputLimits);
      validateInputs(body, model.signature);
      if (model.pipeline !== undefined) await checkPipelineImages(body, model);
      batchShape = batchShapeFor(body, model);
      this.checkCallbackUrl(body);
    } catch (error: unknown) {
      metrics.requests.inc({ ...labels, status: 'rejected' });
      throw error;
    }

    const now = this.now();
    const id = newRequestId();
    const useCache = usesCache(body, model);
    const waitMs = this.deps.records.clampWaitSeconds(input.waitSeconds) * 1000;
    const waiter = waitMs > 0 ? await this.deps.records.awaitEnd(id) : undefined;
    let outcome: SubmitOutcome;
    try {
      outcome = await queue.submit({
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
        ...(accept.trace === undefined ? {} : { trace: accept.trace }),
        admission: this.admission(input, model, body.timeoutMs),
      });
    } catch (error: unknown) {
      waiter?.release();
      throw error;
    }
    this.accepted(accept, outcome, id, model.version);

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
        const rechecked = await this.deps.records.awaitAnnouncement(id, waiter, waitMs, input.signal);
        if (rechecked !== undefined) return { kind: 'finished', record: rechecked };
        const done = waiter.completion();
        // A message without its outputs (too large for pub/sub, `outputsOmitted`) sends us to the record.
        if (
          outcome.kind === 'queued' &&
          done?.head.finishedAt !== undefined &&
          done.head.outputsOmitted !== true
        ) {
          // Everything else on the record is what this call just wrote: no need to read it back.
          const known = { tenant: input.tenant, createdAt: now, metadata: body.metadata };
          return answerFromCompletion(done, known);
        }
        const record = await this.deps.store.get(id);
        // Gone (Redis restarted without AOF, flushed): 404, as a GET of it would answer.
        if (record === undefined) throw notFoundRequest(id);
        if (TERMINAL_STATUSES.has(record.status)) return { kind: 'finished', record };
        status = record.status;
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
   * entry in `rejected`. When every request is refused, the first refusal is thrown (429 or 503).
   */
  submitBulk(input: Omit<SubmitInput, 'waitSeconds'>): Promise<BulkSubmitResult> {
    if (this.deps.tracing === undefined) return this.submitMany(input, untraced(input));
    return this.traced(this.deps.tracing, input, (accept) => this.submitMany(input, accept));
  }

  private async submitMany(
    input: Omit<SubmitInput, 'waitSeconds'>,
    accept: TracedSubmission,
  ): Promise<BulkSubmitResult> {
    const { queue, metrics } = this.deps;
    const model = this.resolveModel(input.model, input.version);
    const labels = { model: model.name };
    let bodies: InferRequestBody[];
    let batchShapes: (string | undefined)[];
    try {
      if (input.format === 'image') {
        throw new UnsupportedMediaTypeError('an infer:bulk body is JSON or MessagePack, not an image');
      }
      bodies = decodeBulkInferRequest(input.body, input.format, this.inputLimits, this.maxBulkRequests);
      batchShapes = bodies.map((body, index) =>
        checkBulkRequest(index, () => {
          validateInputs(body, model.signature);
          this.checkCallbackUrl(body);
          return batchShapeFor(body, model);
        }),
      );
      if (model.pipeline !== undefined) {
        for (const [index, body] of bodies.entries()) {
          await checkPipelineImages(body, model).catch((error: unknown) =>
            checkBulkRequest(index, () => {
              throw error;
            }),
          );
        }
      }
    } catch (error: unknown) {
      metrics.requests.inc({ ...labels, status: 'rejected' }, 1);
      throw error;
    }
    const now = this.now();
    const common = { ...input, waitSeconds: 0, idempotencyKey: undefined };
    // An Idempotency-Key names each request of the body: a retried body answers the same ids.
    const fingerprint =
      input.idempotencyKey === undefined ? undefined : submissionFingerprint({ ...input, bulk: true });
    const params = bodies.map((body, index) => {
      const admission = this.admission(common, model, body.timeoutMs);
      return {
        ...submitParams(newRequestId(), model, body, input.tenant, now, batchShapes[index]),
        ...(accept.trace === undefined ? {} : { trace: accept.trace }),
        admission:
          input.idempotencyKey === undefined || fingerprint === undefined
            ? admission
            : {
                ...admission,
                idempotency: {
                  key: bulkIdempotencyKey(input.idempotencyKey, index),
                  fingerprint,
                  ttlSeconds: this.deps.config.limits.idempotencyTtlSeconds,
                },
              },
      };
    });
    const outcomes = await queue.submitBulk(params);
    accept.span?.acceptedMany(outcomes.length);
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
      if (outcome.kind === 'replayed') {
        metrics.requests.inc({ ...labels, status: 'replayed' });
        ids.push(outcome.record.id);
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

  /**
   * The submit script's checks for one submission: the configuration's limits, and the queue the
   * request's deadline allows (its `timeoutMs`, else its model's latency objective) given the
   * version's measured batch costs and live workers (docs/design.md, "Deadlines").
   */
  private admission(input: SubmitInput, model: ServedModel, timeoutMs: number | undefined): Admission {
    const { limits } = this.deps.config;
    const admission: Admission = { maxQueueDepth: limits.maxQueueDepth };
    const budgetMs = timeoutMs ?? model.config.latencyObjectiveMs;
    if (budgetMs !== undefined) {
      const view = this.deps.catalog.versionView(model.name, model.version);
      const bound = deadlineBound(view?.batchCosts, view?.liveWorkers ?? 0, budgetMs);
      if (bound !== undefined) admission.deadline = bound;
    }
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
    const waitMs = this.deps.records.clampWaitSeconds(input.waitSeconds) * 1000;
    if (!TERMINAL_STATUSES.has(record.status)) {
      record =
        waitMs > 0
          ? await this.deps.records.waitForTerminal(record.id, input.tenant, waitMs, input.signal)
          : ((await this.deps.store.get(record.id)) ?? record);
    }
    if (TERMINAL_STATUSES.has(record.status)) return { kind: 'finished', record };
    return {
      kind: 'accepted',
      accepted: { id: record.id, status: record.status, model: record.model, version: record.version },
    };
  }

  /** A webhook this deployment would not deliver is refused now, not after the request has run. */
  private checkCallbackUrl(body: InferRequestBody): void {
    const url = body.callback?.url;
    if (url === undefined) return;
    const refusal = this.callbackCheck.refusalOf(url);
    if (refusal !== undefined) throw new CallbackRefusedError(`callback.url ${refusal}`);
  }

  private resolveModel(name: string, version: number | undefined): ServedModel {
    return this.deps.catalog.resolve(name, version);
  }
}

/** A submission's tracing: its accept span (tracing on), and the context its requests carry. */
interface TracedSubmission {
  span: AcceptSpan | undefined;
  /** The packed W3C context stored with each request: the accept span's, else the caller's own. */
  trace: string | undefined;
  error: unknown;
  /** The span was ended once the request was accepted. */
  ended: boolean;
}

/** Tracing off and no traceparent: nothing to carry (shared: nothing writes to it without a span). */
const NOT_TRACED: TracedSubmission = Object.freeze({
  span: undefined,
  trace: undefined,
  error: undefined,
  ended: false,
});

/** The caller's context (packed), read only when a traceparent was sent; undefined if invalid. */
function incomingTrace(input: Pick<SubmitInput, 'traceparent' | 'tracestate'>): string | undefined {
  return input.traceparent === undefined
    ? undefined
    : traceContextOfHeaders(input.traceparent, input.tracestate);
}

/** Tracing off: the caller's own context travels as it came; a request without one costs nothing. */
function untraced(input: Pick<SubmitInput, 'traceparent' | 'tracestate'>): TracedSubmission {
  const trace = incomingTrace(input);
  return trace === undefined ? NOT_TRACED : { span: undefined, trace, error: undefined, ended: false };
}

function retryAfterOf(error: InferqError): { retryAfterSeconds?: number } {
  return error.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: error.retryAfterSeconds };
}
