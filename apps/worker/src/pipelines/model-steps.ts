/**
 * A pipeline's model steps go through the model's own queue (docs/pipelines.md): each is a request
 * of its own, submitted as the API submits one, so it batches fleet-wide with every other caller of
 * that model, hits and fills the cache, and coalesces. The pipeline waits for its end on this
 * process's notify channel, reading the record on a recheck (pub/sub is at-most-once).
 */
import {
  cacheKey,
  decodeCompletionMessage,
  encodePayload,
  newRequestId,
  type RequestRecord,
  requestBatchShape,
  TERMINAL_STATUSES,
  type TensorMap,
} from '@inferq/protocol';
import type { ModelVersion } from '@inferq/repository';
import type { CompletionWatcher, InferenceQueue, RequestStore, SubmitParams } from '@inferq/store';

/** How often a step's record is read while its end is not announced (a message may be lost). */
const RECHECK_MS = 2_000;

/** The pipeline request a model step runs for: what its model request inherits. */
export interface ParentRequest {
  id: string;
  tenant: string;
  /** Absolute deadline (ms since epoch): every model request of the pipeline has it too. */
  deadline?: number;
  priority?: number;
  /** False when the pipeline request opted out of the cache: its model requests do too. */
  useCache: boolean;
  /**
   * The packed W3C context its model requests carry: the pipeline run's span (tracing on), else the
   * pipeline request's own; so every model step is in the pipeline request's trace.
   */
  trace?: string;
}

/** What a model step's request ended with. */
export interface ModelStepOutcome {
  outputs: TensorMap;
  queueMs: number;
  batchWaitMs: number;
  inferMs: number;
  batchSize?: number;
}

/** A model step's request did not succeed: its model request's status and error, verbatim. */
export class ModelStepError extends Error {
  override readonly name = 'ModelStepError';
  readonly status: string;
  constructor(status: string, message: string) {
    super(message);
    this.status = status;
  }
}

export interface ModelStepsOptions {
  queue: InferenceQueue;
  store: RequestStore;
  /** Subscribed to this process's notify channel (it has an `instance`). */
  watcher: CompletionWatcher;
  /** The served version a step names (its default when `version` is absent); undefined: none. */
  resolve(model: string, version: number | undefined): ModelVersion | undefined;
  now?: () => number;
}

export class ModelSteps {
  private readonly options: ModelStepsOptions;
  private readonly now: () => number;

  constructor(options: ModelStepsOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  /** Submits one model request for the step and resolves with its outputs once it succeeded. */
  async run(
    model: string,
    version: number | undefined,
    inputs: TensorMap,
    parent: ParentRequest,
    signal: AbortSignal,
  ): Promise<ModelStepOutcome> {
    signal.throwIfAborted();
    const target = this.options.resolve(model, version);
    if (target === undefined) {
      throw new ModelStepError(
        'unavailable',
        `model '${model}'${version === undefined ? '' : ` version ${version}`} is not in the model repository`,
      );
    }
    const params = this.paramsFor(target, inputs, parent);
    const ended = this.awaitEnd(params.id, signal);
    try {
      const outcome = await this.options.queue.submit(params);
      switch (outcome.kind) {
        case 'cached':
        case 'replayed':
          return outcomeOf(outcome.record);
        case 'rejected':
          throw new ModelStepError(
            'rejected',
            `model '${model}' refused the step's request (${outcome.rejection.reason})`,
          );
        default:
          return outcomeOf(await ended.record);
      }
    } finally {
      ended.stop();
    }
  }

  private paramsFor(target: ModelVersion, inputs: TensorMap, parent: ParentRequest): SubmitParams {
    const { config, signature } = target;
    const useCache = config.cache.enabled && parent.useCache;
    const batchShape = requestBatchShape(inputs, signature, config.maxBatchSize);
    const now = this.now();
    return {
      id: newRequestId(),
      model: target.name,
      version: target.version,
      tenant: parent.tenant,
      cacheKey: useCache
        ? cacheKey({ tenant: parent.tenant, model: target.name, version: target.version, inputs })
        : '',
      useCache,
      cacheTtlSeconds: config.cache.ttlSeconds,
      payload: encodePayload({ inputs }),
      ...(batchShape === undefined ? {} : { batchShape }),
      ...(parent.priority === undefined ? {} : { priority: parent.priority }),
      ...(parent.deadline === undefined ? {} : { deadline: parent.deadline }),
      metadata: { pipelineRequest: parent.id },
      ...(parent.trace === undefined ? {} : { trace: parent.trace }),
      now,
      ...(this.options.watcher.instance === undefined ? {} : { notify: this.options.watcher.instance }),
    };
  }

  /**
   * The record of request `id` once it is terminal: expected on the notify channel before it is
   * submitted (so its end cannot be missed), and read again every RECHECK_MS and after the
   * subscriber reconnects.
   */
  private awaitEnd(id: string, signal: AbortSignal): { record: Promise<Ended>; stop: () => void } {
    const { watcher, store } = this.options;
    let stop = (): void => undefined;
    const record = new Promise<Ended>((resolve, reject) => {
      let settled = false;
      const settle = (value: Ended | Error): void => {
        if (settled) return;
        settled = true;
        stop();
        if (value instanceof Error) reject(value);
        else resolve(value);
      };
      const recheck = (): void => {
        store
          .get(id)
          .then((found) => {
            if (found !== undefined && TERMINAL_STATUSES.has(found.status)) settle(found);
          })
          .catch(() => undefined);
      };
      const stopExpecting = watcher.expect(id, (head, message) => {
        if (head.outputsOmitted === true || head.status !== 'succeeded') {
          recheck();
          return;
        }
        settle(decodeCompletionMessage(message));
      });
      const stopResync = watcher.onResync(recheck);
      const timer = setInterval(recheck, RECHECK_MS);
      const onAbort = (): void => {
        // The pipeline no longer wants it: a request still queued is cancelled (a running one ends).
        store.cancel(id, this.now()).catch(() => undefined);
        settle(asError(signal.reason));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      stop = () => {
        stopExpecting();
        stopResync();
        clearInterval(timer);
        signal.removeEventListener('abort', onAbort);
      };
    });
    record.catch(() => undefined);
    return { record, stop: () => stop() };
  }
}

/** What a step needs of its model request's end: its record, or its completion message. */
type Ended = Pick<RequestRecord, 'id' | 'status' | 'outputs' | 'error' | 'timings' | 'batchSize'>;

function outcomeOf(record: Ended): ModelStepOutcome {
  if (record.status !== 'succeeded' || record.outputs === undefined) {
    const why = record.error === undefined ? '' : `: ${record.error.message}`;
    throw new ModelStepError(record.status, `its model request ${record.id} ended ${record.status}${why}`);
  }
  return {
    outputs: record.outputs,
    queueMs: record.timings.queueMs,
    batchWaitMs: record.timings.batchWaitMs,
    inferMs: record.timings.inferMs,
    ...(record.batchSize === undefined ? {} : { batchSize: record.batchSize }),
  };
}

function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}
