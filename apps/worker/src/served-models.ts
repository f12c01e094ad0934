/**
 * The model versions one worker serves and their lifecycle: each version of the repository is loaded
 * (session opened, warm-up run) and served, or marked unavailable with the reason; a version that
 * leaves the repository (or its version policy) is retired after draining; a changed one is loaded
 * again. Nothing here stops the process: one bad model never takes the others down.
 */
import { hostname } from 'node:os';
import type { Logger, Metrics, Tracing } from '@inferq/observability';
import type { InputLimits, RequestError } from '@inferq/protocol';
import type { ModelRepository, ModelVersion, RepositoryVersion } from '@inferq/repository';
import { ModelSession } from '@inferq/runtime';
import type { FleetRegistry, InferenceQueue, ServedVersion, VersionState, WorkerReport } from '@inferq/store';
import { costProfileOf, type MeasuredCosts, measureBatchCosts } from './batch-costs.ts';
import { directRequestOf } from './direct-jobs.ts';
import type { VersionLiveStats, WorkerLiveStats } from './live-stats.ts';
import { intakeCapacity, ModelWorker } from './model-worker.ts';
import { PIPELINE_CONCURRENCY, PipelineWorker } from './pipelines/pipeline-worker.ts';
import type { PipelineSupport } from './pipelines/pipelines.ts';

/** Error code of a request whose model version left the repository before a worker ran it. */
export const MODEL_VERSION_RETIRED = 'model_version_retired';
/** Error code of a request whose model version no live worker can load. */
export const MODEL_UNAVAILABLE = 'model_unavailable';

/**
 * How long a retired version keeps serving its queue before what is left ends `failed`: long enough
 * for every API to see the version retired in the fleet view (it refreshes every second) and stop
 * accepting it, so that nothing accepted is stranded.
 */
export const RETIRE_DRAIN_MS = 3_000;

export interface ServedModelsOptions {
  workerId: string;
  queue: InferenceQueue;
  fleet: FleetRegistry;
  jobAttempts: number;
  maxOutputBytes: number;
  /** The API's input limits, for requests a producer put in a queue directly. */
  inputLimits?: InputLimits;
  metrics: Metrics;
  /** The status page's figures: each served version records into its share (live-stats.ts). */
  liveStats?: WorkerLiveStats;
  logger: Logger;
  /** Overrides RETIRE_DRAIN_MS (tests). */
  retireDrainMs?: number;
  /** OpenTelemetry spans of batches and pipeline runs (an OTLP endpoint is configured); absent: off. */
  tracing?: Tracing;
  /** What serving a pipeline needs (docs/pipelines.md); absent: pipeline versions are unavailable. */
  pipelines?: PipelineSupport;
  /** The repository reads are of some models only (MODELS): a pipeline's models are read beside them. */
  partialRepository?: boolean;
}

/** One version of one model on this worker. */
interface Slot {
  model: string;
  version: number;
  state: VersionState;
  reason?: string;
  fingerprint: string;
  provider?: string;
  placement?: string;
  loadMs?: number;
  warmupMs?: number;
  /** Measured at warm-up (warmup on, a batch axis); kept current by its worker's runs. */
  costs?: MeasuredCosts;
  session?: ModelSession;
  worker?: ModelWorker | PipelineWorker;
}

const slotKey = (model: string, version: number): string => `${model}\u0000${version}`;

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class ServedModels {
  private readonly options: ServedModelsOptions;
  private readonly slots = new Map<string, Slot>();
  /** Reconciliations run one at a time, in order: a reload never races another. */
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  /** Called when a state changes, so the fleet hears of it before the next heartbeat. */
  onChange: (() => void) | undefined;

  constructor(options: ServedModelsOptions) {
    this.options = options;
  }

  /** Brings the served versions in line with the repository; resolves once that is done. */
  reconcile(repository: ModelRepository): Promise<void> {
    const run = this.queue.then(() => this.reconcileNow(repository));
    this.queue = run.catch((error: unknown) =>
      this.options.logger.error({ err: error }, 'reconciling the model repository failed'),
    );
    return run;
  }

  /** What this worker serves, for its heartbeat report. */
  versions(): ServedVersion[] {
    return [...this.slots.values()].map((slot) => {
      const served: ServedVersion = { model: slot.model, version: slot.version, state: slot.state };
      if (slot.reason !== undefined) served.reason = slot.reason;
      if (slot.provider !== undefined) served.provider = slot.provider;
      if (slot.placement !== undefined) served.placement = slot.placement;
      if (slot.loadMs !== undefined) served.loadMs = slot.loadMs;
      if (slot.warmupMs !== undefined) served.warmupMs = slot.warmupMs;
      if (slot.costs !== undefined && slot.state === 'ready')
        served.batchCosts = costProfileOf(slot.costs.costs);
      served.fingerprint = slot.fingerprint;
      return served;
    });
  }

  report(now: number): WorkerReport {
    return {
      id: this.options.workerId,
      host: hostname(),
      pid: process.pid,
      heartbeatAt: now,
      versions: this.versions(),
    };
  }

  /** Versions with a running worker (ready or draining), for queue-depth metrics. */
  running(): (ModelWorker | PipelineWorker)[] {
    return [...this.slots.values()].flatMap((slot) => (slot.worker ? [slot.worker] : []));
  }

  /** Stops every version: running batches finish, formed ones go back to the queue. */
  async close(): Promise<void> {
    this.closed = true;
    // Every ModelWorker stops dispatching now, in this tick (its close marks it first thing): a
    // reconciliation under way is waited for after, and whatever it started is stopped then.
    const stopping = [...this.slots.values()].map((slot) => this.stop(slot));
    await this.queue;
    await Promise.all([...stopping, ...[...this.slots.values()].map((slot) => this.stop(slot))]);
  }

  private async reconcileNow(repository: ModelRepository): Promise<void> {
    if (this.closed) return;
    await this.options.pipelines?.setRepository(repository, this.options.partialRepository === true);
    const wanted = new Map<string, RepositoryVersion>();
    for (const model of repository.models()) {
      for (const entry of model.versions) {
        if (!entry.retired) wanted.set(slotKey(entry.name, entry.version), entry);
      }
    }
    // Versions that left start retiring now; they drain while the new ones load.
    const retiring: Promise<void>[] = [];
    for (const [key, slot] of this.slots) {
      if (!wanted.has(key) && slot.state !== 'retired') retiring.push(this.retire(slot));
    }
    // Mark everything that will load as loading at once, so the fleet knows capacity is coming.
    const toLoad: ModelVersion[] = [];
    for (const [key, want] of wanted) {
      const slot = this.slots.get(key);
      if (slot !== undefined && slot.fingerprint === want.fingerprint && slot.state !== 'retired') continue;
      if (slot !== undefined) await this.stop(slot);
      if (want.model === undefined) {
        const reason = want.problem ?? 'cannot be served';
        this.slots.set(key, {
          model: want.name,
          version: want.version,
          state: 'unavailable',
          reason,
          fingerprint: want.fingerprint,
        });
        this.options.logger.warn(
          { model: want.name, version: want.version, reason },
          'model version unavailable',
        );
        void this.endIfNobodyServes(want.name, want.version, { code: MODEL_UNAVAILABLE, message: reason });
        continue;
      }
      this.slots.set(key, {
        model: want.name,
        version: want.version,
        state: 'loading',
        fingerprint: want.fingerprint,
      });
      toLoad.push(want.model);
    }
    this.onChange?.();
    // One version at a time: loading is CPU- and memory-heavy, and the first ones serve sooner. Its
    // Redis round trips (a connection, the consumer groups) overlap the next version's loading: one
    // after the other they doubled the start-up of a repository of ~900 small models.
    const serving: Promise<void>[] = [];
    for (const version of toLoad) {
      if (this.closed) break;
      if (version.pipeline !== undefined) {
        serving.push(this.servePipeline(version).then(() => this.onChange?.()));
        continue;
      }
      const session = await this.load(version);
      if (session === undefined) this.onChange?.();
      else serving.push(this.serve(version, session).then(() => this.onChange?.()));
    }
    await Promise.all([...serving, ...retiring]);
  }

  /** Opens and warms up a version's session; undefined when the version is unavailable. */
  private async load(version: ModelVersion): Promise<ModelSession | undefined> {
    const slot = this.slots.get(slotKey(version.name, version.version))!;
    const opening = performance.now();
    let session: ModelSession | undefined;
    try {
      try {
        session = await ModelSession.open(version, { intraOpThreads: version.config.intraOpThreads });
      } catch (error) {
        throw new Error(`cannot load: ${messageOf(error)}`);
      }
      slot.loadMs = Math.round(performance.now() - opening);
      slot.provider = session.executionProvider;
      slot.placement = session.placement;
      if (version.config.warmup) {
        const warming = performance.now();
        try {
          await session.warmup();
        } catch (error) {
          throw new Error(`warm-up failed: ${messageOf(error)}`);
        }
        if (version.config.maxBatchSize > 0) {
          // The warm-up batch ran: a size that fails to time leaves the version served, its batches
          // closing at maxBatchSize as without a cost model, and its real requests will tell.
          try {
            slot.costs = await measureBatchCosts(session, version);
          } catch (error) {
            this.options.logger.warn(
              { err: error, model: version.name, version: version.version },
              'timing the batch sizes failed; batches close at maxBatchSize',
            );
          }
        }
        slot.warmupMs = Math.round(performance.now() - warming);
      }
      return session;
    } catch (error) {
      await this.fail(version, slot, session, error);
      return undefined;
    }
  }

  /** The version's share of the status page's figures, as an option of its worker. */
  private liveStatsOf(version: ModelVersion): { liveStats?: VersionLiveStats } {
    const stats = this.options.liveStats?.forVersion(version.name, version.version);
    return stats === undefined ? {} : { liveStats: stats };
  }

  /** The process's tracing, as an option of a version's worker. */
  private tracingOption(): { tracing?: Tracing } {
    const tracing = this.options.tracing;
    return tracing === undefined ? {} : { tracing };
  }

  /** Starts serving a loaded version's queue: its intake and a ModelWorker. */
  private async serve(version: ModelVersion, session: ModelSession): Promise<void> {
    const { logger } = this.options;
    const slot = this.slots.get(slotKey(version.name, version.version))!;
    try {
      const intake = await this.options.queue.openIntake({
        model: version.name,
        version: version.version,
        consumer: this.options.workerId,
        capacity: intakeCapacity(version),
        logger,
        direct: (body) => directRequestOf(version, body, this.options.inputLimits),
      });
      slot.session = session;
      slot.worker = new ModelWorker({
        version,
        session,
        intake,
        jobAttempts: this.options.jobAttempts,
        maxOutputBytes: this.options.maxOutputBytes,
        ...(slot.costs === undefined ? {} : { costs: slot.costs }),
        ...this.tracingOption(),
        ...this.liveStatsOf(version),
        metrics: this.options.metrics,
        logger,
      });
      slot.worker.start();
      slot.state = 'ready';
      logger.info(
        {
          model: version.name,
          version: version.version,
          provider: slot.provider,
          placement: slot.placement,
          loadMs: slot.loadMs,
          warmupMs: slot.warmupMs,
          warmupSample: version.warmupSample?.file,
          config: version.config,
        },
        'model loaded',
      );
    } catch (error) {
      await this.fail(version, slot, session, error);
    }
  }

  /** Starts serving a pipeline version's queue: nothing to load, its models are served by their workers. */
  private async servePipeline(version: ModelVersion): Promise<void> {
    const { logger, pipelines } = this.options;
    const slot = this.slots.get(slotKey(version.name, version.version))!;
    const pipeline = version.pipeline;
    try {
      if (pipelines === undefined || pipeline === undefined)
        throw new Error('this worker serves no pipelines');
      const runtime = await pipelines.ensure();
      const intake = await this.options.queue.openIntake({
        model: version.name,
        version: version.version,
        consumer: this.options.workerId,
        capacity: PIPELINE_CONCURRENCY,
        logger,
      });
      slot.worker = new PipelineWorker({
        version: { ...version, pipeline },
        intake,
        ...runtime,
        parentOf: (id) => pipelines.parentOf(id),
        statusOf: (id) => pipelines.statusOf(id),
        ...this.tracingOption(),
        jobAttempts: this.options.jobAttempts,
        maxOutputBytes: this.options.maxOutputBytes,
        metrics: this.options.metrics,
        logger,
      });
      slot.worker.start();
      slot.state = 'ready';
      logger.info(
        { pipeline: version.name, version: version.version, steps: pipeline.steps.length },
        'pipeline served',
      );
    } catch (error) {
      await this.fail(version, slot, undefined, error);
    }
  }

  /** Marks the version unavailable with why, releases what it held, ends what is queued for it. */
  private async fail(
    version: ModelVersion,
    slot: Slot,
    session: ModelSession | undefined,
    error: unknown,
  ): Promise<void> {
    slot.state = 'unavailable';
    slot.reason = messageOf(error);
    await session?.close().catch(() => undefined);
    slot.session = undefined;
    this.options.logger.warn(
      { model: version.name, version: version.version, reason: slot.reason },
      'model version unavailable',
    );
    await this.endIfNobodyServes(version.name, version.version, {
      code: MODEL_UNAVAILABLE,
      message: slot.reason,
    });
  }

  /**
   * A version that left the repository: the fleet hears at once that it is retired (APIs stop
   * accepting it), its queue is served for a drain period, and whatever is still queued then ends
   * `failed` (model_version_retired) unless another live worker still serves it.
   */
  private async retire(slot: Slot): Promise<void> {
    slot.state = 'retired';
    this.onChange?.();
    this.options.logger.info({ model: slot.model, version: slot.version }, 'model version retired: draining');
    if (slot.worker !== undefined) {
      await new Promise((resolve) => setTimeout(resolve, this.options.retireDrainMs ?? RETIRE_DRAIN_MS));
    }
    await this.stop(slot);
    await this.endIfNobodyServes(slot.model, slot.version, {
      code: MODEL_VERSION_RETIRED,
      message: `version ${slot.version} of model '${slot.model}' was removed from the repository before a worker ran this request`,
    });
  }

  /** Closes the version's ModelWorker (and its intake) and session; its state stays as it is. */
  private async stop(slot: Slot): Promise<void> {
    const { worker, session } = slot;
    slot.worker = undefined;
    slot.session = undefined;
    await worker?.close();
    await session?.close();
  }

  /**
   * Requests queued for a version that no live worker serves (ready or loading) would wait for ever:
   * they end `failed` with `error`. Another worker still serving it keeps them.
   */
  private async endIfNobodyServes(model: string, version: number, error: RequestError): Promise<void> {
    const { fleet, queue, logger } = this.options;
    try {
      const reports = await fleet.live(Date.now());
      const servedElsewhere = reports.some(
        (report) =>
          report.id !== this.options.workerId &&
          report.versions.some(
            (v) =>
              v.model === model && v.version === version && (v.state === 'ready' || v.state === 'loading'),
          ),
      );
      if (servedElsewhere) return;
      // Most unavailable versions never had a request: no connection, no consumer group for those.
      const counts = await queue.counts(model, version);
      if (counts.waiting + counts.taken + counts.delayed === 0) return;
      const ended = await queue.failWaiting(model, version, error, this.options.workerId);
      if (ended > 0)
        logger.warn(
          { model, version, ended, code: error.code },
          'ended the requests queued for a version nobody serves',
        );
    } catch (failure) {
      logger.warn(
        { err: failure, model, version },
        'could not end the requests queued for an unserved version',
      );
    }
  }
}
