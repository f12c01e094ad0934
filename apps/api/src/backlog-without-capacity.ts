/**
 * `inferq_backlog_without_capacity{model,version}`: the requests that wait for a model version no live
 * worker holds. A worker group scaled to zero has no worker to report anything, so this is the signal
 * that wakes it (deploy/README.md), and the one an alert reads when requests wait for nothing.
 */
import type { QueueCounts } from '@inferq/store';
import { NO_LIVE_WORKER, type VersionView } from './catalog.ts';

/** What the computation reads of the catalogue (ModelCatalog has it). */
export interface CatalogVersions {
  modelNames(): string[];
  versions(name: string): readonly Pick<VersionView, 'version' | 'state' | 'reason'>[] | undefined;
}

export interface VersionBacklog {
  model: string;
  version: number;
  backlog: number;
}

/**
 * One entry per version of every model that is not retired (the versions `inferq_queue_depth` sums).
 * A version no live worker holds (none has it loading, ready or failed: `unavailable` for want of a
 * worker, docs/models.md "Capacity") counts its requests waiting in its queue, taken by a worker that
 * has since died (they come back once their lease lapses) and delayed for a retry; requests held by
 * `inferq queue pause` are left out, since no worker would take them. Any other version counts 0,
 * without a Redis read: its requests have a worker, or are refused.
 */
export async function backlogWithoutCapacity(
  catalog: CatalogVersions,
  counts: (model: string, version: number) => Promise<QueueCounts>,
): Promise<VersionBacklog[]> {
  const entries = catalog.modelNames().flatMap((model) =>
    (catalog.versions(model) ?? [])
      .filter((view) => view.state !== 'retired')
      .map(async ({ version, state, reason }): Promise<VersionBacklog> => {
        if (state !== 'unavailable' || reason !== NO_LIVE_WORKER) return { model, version, backlog: 0 };
        const { waiting, taken, delayed } = await counts(model, version);
        return { model, version, backlog: waiting + taken + delayed };
      }),
  );
  return Promise.all(entries);
}
