/**
 * What the API does, free of HTTP: submit a request (submission.ts), read, wait for, cancel and
 * follow one (records.ts), describe the models and the readiness of the deployment (model-views.ts).
 * Routes in server.ts only translate HTTP to these calls and their results back.
 */
import type { Config } from '@inferq/config';
import type { Logger, Metrics, Tracing } from '@inferq/observability';
import type { InputLimits, ModelDescription, RequestRecord } from '@inferq/protocol';
import type { CompletionWatcher, InferenceQueue, RequestStore } from '@inferq/store';
import type { ModelCatalog } from './catalog.ts';
import { ModelViews, type Readiness } from './model-views.ts';
import { RequestRecords, type StatusEvent } from './records.ts';
import { type BulkSubmitResult, Submission, type SubmitInput, type SubmitResult } from './submission.ts';

export type { Readiness } from './model-views.ts';
export type { StatusEvent } from './records.ts';
export type {
  BulkRejection,
  BulkSubmitResult,
  ServedModel,
  SubmitInput,
  SubmitResult,
} from './submission.ts';

export interface InferenceServiceDeps {
  config: Pick<Config, 'maxWaitSeconds' | 'limits' | 'webhooks'>;
  /** Where requests wait for workers (QUEUE_BACKEND). */
  queue: InferenceQueue;
  /** The records, the cache and the rest of a request's data, the same for every backend. */
  store: RequestStore;
  watcher: CompletionWatcher;
  catalog: ModelCatalog;
  metrics: Metrics;
  logger: Logger;
  /** Aborted when the process stops: waits answer at once with the state they have. */
  shutdownSignal?: AbortSignal;
  /** OpenTelemetry spans (an OTLP endpoint is configured); absent: tracing off. */
  tracing?: Tracing;
  inputLimits?: InputLimits;
  /** Requests in one `infer:bulk` body; default: no cap. */
  maxBulkRequests?: number;
  now?: () => number;
  /**
   * How often a waiter (status stream, long-poll, `Prefer: wait`) re-reads the record, in case a
   * pub/sub message was lost or the record itself is gone.
   */
  recheckIntervalMs?: number;
}

export class InferenceService {
  private readonly deps: InferenceServiceDeps;
  private readonly submission: Submission;
  private readonly records: RequestRecords;
  private readonly views: ModelViews;

  constructor(deps: InferenceServiceDeps) {
    this.deps = deps;
    this.records = new RequestRecords(deps);
    this.submission = new Submission({ ...deps, records: this.records });
    this.views = new ModelViews(deps);
  }

  /** Validates and submits one request; waits for its result when asked to. */
  submit(input: SubmitInput): Promise<SubmitResult> {
    return this.submission.submit(input);
  }

  /** Validates and submits every request of an `infer:bulk` body (see Submission.submitBulk). */
  submitBulk(input: Omit<SubmitInput, 'waitSeconds'>): Promise<BulkSubmitResult> {
    return this.submission.submitBulk(input);
  }

  /** The record of one of the tenant's requests; with `waitSeconds`, long-polls for a terminal state. */
  getRecord(id: string, tenant: string, waitSeconds = 0, signal?: AbortSignal): Promise<RequestRecord> {
    return this.records.getRecord(id, tenant, waitSeconds, signal);
  }

  /** Cancels a request that has not started, or a running pipeline request (see RequestRecords.cancel). */
  cancel(id: string, tenant: string): Promise<RequestRecord> {
    return this.records.cancel(
      id,
      tenant,
      (model, version) => this.deps.catalog.versionView(model, version)?.model?.pipeline !== undefined,
    );
  }

  /** Emits the request's status, each change, then its terminal record (see RequestRecords.followStatus). */
  followStatus(
    id: string,
    tenant: string,
    emit: (event: StatusEvent) => void | Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    return this.records.followStatus(id, tenant, emit, signal);
  }

  listModels(): ModelDescription[] {
    return this.views.listModels();
  }

  describeModel(name: string): ModelDescription {
    return this.views.describeModel(name);
  }

  readiness(redisHealthy?: () => boolean): Promise<Readiness> {
    return this.views.readiness(redisHealthy);
  }

  queueDepths(): Promise<[string, number][]> {
    return this.views.queueDepths();
  }
}
