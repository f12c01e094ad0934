/**
 * What the API knows of the models: the repository (read by this process from the model files, no
 * onnxruntime) for names, signatures and configs, and the fleet view (what live workers report in
 * Redis) for each version's state. Submit asks it which version a request goes to and whether it may
 * be accepted; /v1/models, /readyz and `inferq_model_state` show its view.
 */
import type { Logger, ModelState } from '@inferq/observability';
import { modelsOf } from '@inferq/pipeline';
import { ModelUnavailableError, type ModelVersionStatus, NotFoundError } from '@inferq/protocol';
import type { ModelRepository, ModelVersion, RepositoryVersion } from '@inferq/repository';
import type { FleetRegistry, ServedVersion, WorkerReport } from '@inferq/store';

/** How often the fleet view is read again from Redis. */
export const FLEET_REFRESH_MS = 1_000;
/** Retry-After of a request refused because its version is unavailable or has no capacity. */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;
/** The reason of a version that no live worker holds. */
export const NO_LIVE_WORKER = 'no live worker serves this version';

export interface ModelCatalogOptions {
  repository: ModelRepository;
  fleet: FleetRegistry;
  /** WAIT_FOR_CAPACITY: accept requests for a version no live worker holds (they wait in Redis). */
  waitForCapacity: boolean;
  logger: Logger;
  now?: () => number;
}

/** A version's state in the fleet, as /v1/models shows it. */
export interface VersionView extends ModelVersionStatus {
  /** The servable repository entry; undefined when the repository itself says why not. */
  model?: ModelVersion;
}

/** A version a request may be submitted to. */
export type Servable = ModelVersion;

export class ModelCatalog {
  private readonly options: ModelCatalogOptions;
  private readonly now: () => number;
  private repository: ModelRepository;
  private reports: WorkerReport[] = [];
  /** Per `model\0version`: what live workers say of it. */
  private served = new Map<string, ServedVersion[]>();
  private timer: NodeJS.Timeout | undefined;
  private fleetError: unknown;
  /** Views per model, computed once per repository read and fleet refresh: submit reads them. */
  private viewCache = new Map<string, VersionView[]>();

  constructor(options: ModelCatalogOptions) {
    this.options = options;
    this.repository = options.repository;
    this.now = options.now ?? Date.now;
  }

  /** Reads the fleet view now, then every FLEET_REFRESH_MS until `stop`. */
  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), FLEET_REFRESH_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** A new read of the model repository (hot reload). */
  setRepository(repository: ModelRepository): void {
    this.repository = repository;
    this.viewCache.clear();
  }

  /** Reads the live workers' reports; a failed read keeps the last view (Redis may be restarting). */
  async refresh(): Promise<void> {
    try {
      this.setReports(await this.options.fleet.live(this.now()));
      this.fleetError = undefined;
    } catch (error) {
      if (this.fleetError === undefined) {
        this.options.logger.warn({ err: error }, 'cannot read the fleet view; keeping the last one');
      }
      this.fleetError = error;
    }
  }

  /** The live workers, as last read. */
  liveWorkers(): readonly WorkerReport[] {
    return this.reports;
  }

  /** Names of the models with at least one served version, sorted. */
  modelNames(): string[] {
    return this.repository.list().map((info) => info.name);
  }

  /** Every version of a model on disk, with its state; undefined when the model has no served version. */
  versions(name: string): VersionView[] | undefined {
    const cached = this.viewCache.get(name);
    if (cached !== undefined) return cached;
    // Only names of the repository are cached: a client cannot grow the map with made-up ones.
    const entry = this.repository.model(name);
    if (entry === undefined || entry.versions.every((v) => v.retired)) return undefined;
    const views = entry.versions.map((v) => this.view(v));
    this.viewCache.set(name, views);
    return views;
  }

  /**
   * The version a request without one goes to: the highest served version that is ready, else the
   * highest served one (a new version becomes the default once a worker has it ready).
   */
  defaultVersion(name: string): VersionView | undefined {
    const served = this.versions(name)?.filter((v) => v.state !== 'retired');
    if (served === undefined || served.length === 0) return undefined;
    return served.filter((v) => v.state === 'ready').at(-1) ?? served.at(-1);
  }

  /**
   * The version a request is submitted to. 404: no such model or version, or a retired one. 503 with
   * Retry-After: the version is unavailable (the reason says why), or no live worker holds it and
   * WAIT_FOR_CAPACITY is off.
   */
  resolve(name: string, version: number | undefined): Servable {
    const versions = this.versions(name);
    if (versions === undefined) throw new NotFoundError(`no model named '${name}'`);
    const chosen =
      version === undefined ? this.defaultVersion(name) : versions.find((v) => v.version === version);
    const served = versions.filter((v) => v.state !== 'retired').map((v) => v.version);
    if (chosen === undefined || chosen.state === 'retired') {
      const why = chosen?.reason === undefined ? '' : ` (retired: ${chosen.reason})`;
      const serves = served.length === 0 ? 'it serves no version' : `it serves ${served.join(', ')}`;
      throw new NotFoundError(`model '${name}' has no version ${version}${why}; ${serves}`);
    }
    if (!chosen.accepting || chosen.model === undefined) {
      throw new ModelUnavailableError(
        `model '${name}' version ${chosen.version} is unavailable: ${chosen.reason ?? 'unknown reason'}`,
        { retryAfterSeconds: UNAVAILABLE_RETRY_AFTER_SECONDS },
      );
    }
    return chosen.model;
  }

  /** The fleet's view of one version (its live workers, its measured batch costs), if it is on disk. */
  versionView(name: string, version: number): VersionView | undefined {
    return this.versions(name)?.find((v) => v.version === version);
  }

  /** Every version's state, for `inferq_model_state`. */
  *states(): Iterable<{ model: string; version: number; state: ModelState }> {
    for (const name of this.modelNames()) {
      for (const view of this.versions(name) ?? [])
        yield { model: name, version: view.version, state: view.state };
    }
  }

  private setReports(reports: WorkerReport[]): void {
    const served = new Map<string, ServedVersion[]>();
    for (const report of reports) {
      for (const version of report.versions) {
        const key = `${version.model}\u0000${version.version}`;
        const list = served.get(key) ?? [];
        list.push(version);
        served.set(key, list);
      }
    }
    this.reports = reports;
    this.served = served;
    this.viewCache.clear();
  }

  private view(entry: RepositoryVersion): VersionView {
    const own = this.ownView(entry);
    const pipeline = entry.model?.pipeline;
    if (pipeline === undefined || !own.accepting) return own;
    // A pipeline is only as available as each of its models (docs/pipelines.md).
    for (const { model, version } of modelsOf(pipeline)) {
      const step = version === undefined ? this.defaultVersion(model) : this.versionView(model, version);
      if (step?.accepting === true) continue;
      const which = `model '${model}'${version === undefined ? '' : ` version ${version}`}`;
      return {
        ...own,
        state: 'unavailable',
        accepting: false,
        reason: `its ${which} is unavailable: ${step?.reason ?? 'not in the model repository'}`,
      };
    }
    return own;
  }

  private ownView(entry: RepositoryVersion): VersionView {
    const base = { version: entry.version, liveWorkers: 0, providers: [] as string[] };
    if (entry.retired)
      return { ...base, state: 'retired', accepting: false, reason: 'left out by the version policy' };
    if (entry.model === undefined) {
      return { ...base, state: 'unavailable', accepting: false, reason: entry.problem ?? 'cannot be served' };
    }
    const reports = this.served.get(`${entry.name}\u0000${entry.version}`) ?? [];
    const ready = reports.filter((r) => r.state === 'ready');
    const timing = (r: ServedVersion | undefined): Partial<VersionView> => ({
      ...(r?.loadMs === undefined ? {} : { loadMs: r.loadMs }),
      ...(r?.warmupMs === undefined ? {} : { warmupMs: r.warmupMs }),
      ...(r?.batchCosts === undefined ? {} : { batchCosts: r.batchCosts }),
    });
    const view = { ...base, model: entry.model };
    if (ready.length > 0) {
      const providers = [...new Set(ready.flatMap((r) => (r.provider ? [r.provider] : [])))].sort();
      return {
        ...view,
        ...timing(ready[0]),
        state: 'ready',
        accepting: true,
        liveWorkers: ready.length,
        providers,
      };
    }
    if (reports.some((r) => r.state === 'loading')) return { ...view, state: 'loading', accepting: true };
    const failed = reports.find((r) => r.state === 'unavailable');
    if (failed !== undefined) {
      return {
        ...view,
        ...timing(failed),
        state: 'unavailable',
        accepting: false,
        reason: failed.reason ?? 'cannot be loaded',
      };
    }
    if (reports.some((r) => r.state === 'retired')) {
      return {
        ...view,
        state: 'retired',
        accepting: false,
        reason: 'the workers retired it (it left the repository)',
      };
    }
    return { ...view, state: 'unavailable', accepting: this.options.waitForCapacity, reason: NO_LIVE_WORKER };
  }
}
