/**
 * Gathers what the status snapshot is built from: the catalogue's versions and live workers (already
 * in memory), each version's queue depth and every process's live-stats report (read from Redis).
 * One snapshot serves every viewer for a second, so that many open pages cost Redis no more than one.
 */
import type { InferenceQueue, LiveStatsRegistry } from '@inferq/store';
import { queueName } from '@inferq/store';
import type { ModelCatalog } from '../catalog.ts';
import { buildStatusSnapshot, type ModelInput, type StatusSnapshot } from './status-snapshot.ts';

/** How long one snapshot answers every request for it (ms). */
export const SNAPSHOT_REUSE_MS = 1_000;

export interface StatusSourceOptions {
  catalog: ModelCatalog;
  queue: Pick<InferenceQueue, 'depth'>;
  registry: LiveStatsRegistry;
  now?: () => number;
}

export class StatusSource {
  private readonly options: StatusSourceOptions;
  private readonly now: () => number;
  private last: { at: number; snapshot: Promise<StatusSnapshot> } | undefined;

  constructor(options: StatusSourceOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  snapshot(): Promise<StatusSnapshot> {
    const now = this.now();
    if (this.last !== undefined && now - this.last.at < SNAPSHOT_REUSE_MS) return this.last.snapshot;
    const snapshot = this.build(now);
    const entry = { at: now, snapshot };
    this.last = entry;
    // A failed read is not reused: the next request tries again.
    snapshot.catch(() => {
      if (this.last === entry) this.last = undefined;
    });
    return snapshot;
  }

  private async build(now: number): Promise<StatusSnapshot> {
    const { catalog, queue, registry } = this.options;
    const models = catalog.modelNames().flatMap((name): ModelInput[] => {
      const views = (catalog.versions(name) ?? []).filter((view) => view.state !== 'retired');
      if (views.length === 0) return [];
      const defaultVersion = catalog.defaultVersion(name)?.version;
      return [
        {
          name,
          kind: views.some((view) => view.model?.pipeline !== undefined) ? 'pipeline' : 'model',
          ...(defaultVersion === undefined ? {} : { defaultVersion }),
          versions: views.map((view) => ({
            version: view.version,
            state: view.state,
            ...(view.reason === undefined ? {} : { reason: view.reason }),
            liveWorkers: view.liveWorkers,
          })),
        },
      ];
    });
    const depths = new Map<string, number>();
    const reading = models.flatMap((model) =>
      model.versions.map(async (view) => {
        // One queue that cannot be read shows no depth; the rest of the page stands.
        const depth = await queue.depth(model.name, view.version).catch(() => undefined);
        if (depth !== undefined) depths.set(queueName(model.name, view.version), depth);
      }),
    );
    const [reports] = await Promise.all([registry.read(now), ...reading]);
    return buildStatusSnapshot({
      now,
      models,
      liveWorkers: catalog.liveWorkers().length,
      queueDepths: depths,
      reports,
    });
  }
}
