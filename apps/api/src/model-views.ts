/**
 * What the API says about the models and itself: the model descriptions of `/v1/models`, readiness
 * (`/readyz`) and the queue depths `/metrics` reports, all from the catalogue and the queue.
 */
import type { Logger } from '@inferq/observability';
import { type ModelDescription, NotFoundError, type TensorSpec } from '@inferq/protocol';
import type { InferenceQueue, RequestStore } from '@inferq/store';
import { type ModelCatalog, NO_LIVE_WORKER } from './catalog.ts';
import { isRedisRefusingWrites } from './errors.ts';

export interface ModelViewsDeps {
  store: RequestStore;
  queue: InferenceQueue;
  catalog: ModelCatalog;
  logger: Logger;
}

export interface Readiness {
  ready: boolean;
  /** `refusing-writes`: Redis answers but refuses every submit (full at maxmemory, cannot persist). */
  redis: 'ok' | 'unreachable' | 'refusing-writes';
  /** Each model's default version and its state. */
  models: { name: string; version: number; state: string; liveWorkers: number }[];
  /** Human-readable reasons the deployment is not ready; empty when ready. */
  missing: string[];
  /** Versions that cannot be served, with the reason (they do not hold readiness back). */
  unavailable: { name: string; version: number; reason: string }[];
}

const READINESS_PING_TIMEOUT_MS = 2_000;

export class ModelViews {
  private readonly deps: ModelViewsDeps;

  constructor(deps: ModelViewsDeps) {
    this.deps = deps;
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
    let redis: Readiness['redis'] = 'ok';
    try {
      await withTimeout(store.writeProbe(), READINESS_PING_TIMEOUT_MS);
    } catch (error: unknown) {
      // Only a refusal says something here; anything else is the next check's (or the next call's) to see.
      if (isRedisRefusingWrites(error)) {
        redis = 'refusing-writes';
        missing.push(`Redis refuses writes: ${(error as Error).message}`);
      }
    }
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
    return { ready: missing.length === 0, redis, models, missing, unavailable };
  }

  /** Jobs waiting or running per model (all served versions), for `inferq_queue_depth`. */
  async queueDepths(): Promise<[string, number][]> {
    const { queue, catalog } = this.deps;
    return Promise.all(
      catalog.modelNames().map(async (name): Promise<[string, number]> => {
        const versions = (catalog.versions(name) ?? []).filter((v) => v.state !== 'retired');
        const depths = await Promise.all(versions.map((v) => queue.depth(name, v.version)));
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
        preferredBatchSizes: [...(model?.config.preferredBatchSizes ?? [])],
        latencyObjectiveMs: model?.config.latencyObjectiveMs ?? null,
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
}

function copySpec(spec: TensorSpec): TensorSpec {
  return { name: spec.name, dtype: spec.dtype, shape: [...spec.shape] };
}

function notFoundModel(name: string): NotFoundError {
  return new NotFoundError(`no model named '${name}'`);
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
