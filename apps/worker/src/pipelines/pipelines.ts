/**
 * What a worker needs to serve pipelines, made the first time it serves one: the processor threads,
 * a subscriber on this process's notify channel (its model steps' ends), and the model versions
 * the pipelines' steps name, read from the repository (also those this worker does not serve).
 */
import { randomBytes } from 'node:crypto';
import { modelsOf, type PipelineSpec } from '@inferq/pipeline';
import { loadModelRepository, type ModelRepository, type ModelVersion } from '@inferq/repository';
import {
  CompletionWatcher,
  type InferenceQueue,
  type RedisConnection,
  type RequestStore,
} from '@inferq/store';
import { ModelSteps } from './model-steps.ts';
import { ProcessorPool } from './processor-pool.ts';

export interface PipelineSupportOptions {
  queue: InferenceQueue;
  store: RequestStore;
  /** Opens a Redis connection (the subscriber). */
  connect(): RedisConnection;
  prefix: string;
}

export interface PipelineRuntime {
  pool: ProcessorPool;
  modelSteps: ModelSteps;
}

export class PipelineSupport {
  private readonly options: PipelineSupportOptions;
  /** Made once, by the first pipeline version served: versions served together share it. */
  private runtime: Promise<{ runtime: PipelineRuntime; watcher: CompletionWatcher }> | undefined;
  /** The models pipelines name, as last read. */
  private models: ModelRepository | undefined;

  constructor(options: PipelineSupportOptions) {
    this.options = options;
  }

  /**
   * Follows a new read of the repository: the models its pipelines name are looked up in it, or, when
   * it is a read of some models only (MODELS), read from its folder beside it.
   */
  async setRepository(repository: ModelRepository, partial: boolean): Promise<void> {
    const pipelines = repository
      .models()
      .flatMap((entry) => entry.versions.flatMap((v) => (v.model?.pipeline ? [v.model.pipeline] : [])));
    if (!partial || pipelines.length === 0) {
      this.models = repository;
      return;
    }
    const names = [
      ...new Set(pipelines.flatMap((pipeline: PipelineSpec) => modelsOf(pipeline).map((m) => m.model))),
    ];
    this.models = await loadModelRepository(repository.dir, names, this.models);
  }

  /**
   * What a pipeline request's model steps inherit from it: its tenant (they are submitted as that
   * tenant), and whether it uses the cache (`"cache": false` reaches every step).
   */
  async parentOf(id: string): Promise<{ tenant: string; useCache: boolean } | undefined> {
    const record = await this.options.store.get(id);
    return record === undefined
      ? undefined
      : { tenant: record.tenant, useCache: record.cacheKey !== undefined };
  }

  /** The status of a request's record now; undefined when it is gone. */
  async statusOf(id: string): Promise<string | undefined> {
    return (await this.options.store.get(id))?.status;
  }

  /** A served version a model step names (its default when `version` is absent). */
  resolve(model: string, version: number | undefined): ModelVersion | undefined {
    const found = this.models?.get(model, version);
    return found?.pipeline === undefined ? found : undefined;
  }

  /** The threads and the model-step runner, made on first use. */
  async ensure(): Promise<PipelineRuntime> {
    // A failed start (Redis away) is not kept: the next version served tries again.
    this.runtime ??= this.makeRuntime().catch((error: unknown) => {
      this.runtime = undefined;
      throw error;
    });
    return (await this.runtime).runtime;
  }

  private async makeRuntime(): Promise<{ runtime: PipelineRuntime; watcher: CompletionWatcher }> {
    // The pool first: it throws at once when the build lacks its thread script, before a connection opens.
    const pool = new ProcessorPool();
    const watcher = new CompletionWatcher({
      subscriber: this.options.connect(),
      prefix: this.options.prefix,
      instance: `worker-${randomBytes(9).toString('base64url')}`,
    });
    try {
      await watcher.ready();
    } catch (error) {
      await Promise.all([pool.close(), watcher.close()]);
      throw error;
    }
    const runtime = {
      pool,
      modelSteps: new ModelSteps({
        queue: this.options.queue,
        store: this.options.store,
        watcher,
        resolve: (model, version) => this.resolve(model, version),
      }),
    };
    return { runtime, watcher };
  }

  async close(): Promise<void> {
    const made = await this.runtime?.catch(() => undefined);
    await made?.runtime.pool.close();
    await made?.watcher.close();
  }
}
