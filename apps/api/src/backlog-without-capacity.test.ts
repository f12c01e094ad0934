import type { QueueCounts } from '@inferq/store';
import { describe, expect, it } from 'vitest';
import { backlogWithoutCapacity, type CatalogVersions } from './backlog-without-capacity.ts';
import { NO_LIVE_WORKER, type VersionView } from './catalog.ts';

type View = Pick<VersionView, 'version' | 'state' | 'reason'>;

function catalogOf(models: Record<string, View[]>): CatalogVersions {
  return { modelNames: () => Object.keys(models), versions: (name) => models[name] };
}

const noWorker = (version: number): View => ({ version, state: 'unavailable', reason: NO_LIVE_WORKER });

describe('backlogWithoutCapacity', () => {
  it('counts waiting, taken and delayed requests of versions no live worker holds, and 0 for the others', async () => {
    const catalog = catalogOf({
      rec: [noWorker(1), { version: 2, state: 'ready' }],
      det: [{ version: 1, state: 'loading' }, noWorker(2)],
    });
    const counts: Record<string, QueueCounts> = {
      'rec.v1': { waiting: 5, taken: 2, held: 0, delayed: 1 },
      'det.v2': { waiting: 0, taken: 0, held: 0, delayed: 0 },
    };
    const read: string[] = [];
    const backlog = await backlogWithoutCapacity(catalog, async (model, version) => {
      read.push(`${model}.v${version}`);
      const found = counts[`${model}.v${version}`];
      if (found === undefined) throw new Error(`unexpected read of ${model}.v${version}`);
      return found;
    });
    expect(backlog).toEqual([
      { model: 'rec', version: 1, backlog: 8 },
      { model: 'rec', version: 2, backlog: 0 },
      { model: 'det', version: 1, backlog: 0 },
      { model: 'det', version: 2, backlog: 0 },
    ]);
    // Versions a worker holds (ready or loading) cost no Redis read.
    expect(read.sort()).toEqual(['det.v2', 'rec.v1']);
  });

  it('leaves out requests held by a pause: no worker would take them', async () => {
    const backlog = await backlogWithoutCapacity(catalogOf({ m: [noWorker(1)] }), async () => ({
      waiting: 0,
      taken: 0,
      held: 7,
      delayed: 0,
    }));
    expect(backlog).toEqual([{ model: 'm', version: 1, backlog: 0 }]);
  });

  it('counts 0 for a version unavailable for a reason of its own, and skips retired ones', async () => {
    const catalog = catalogOf({
      m: [
        { version: 1, state: 'retired', reason: 'left out by the version policy' },
        { version: 2, state: 'unavailable', reason: 'cannot load: bad opset' },
      ],
      gone: [],
    });
    const backlog = await backlogWithoutCapacity(catalog, async () => {
      throw new Error('no read expected');
    });
    expect(backlog).toEqual([{ model: 'm', version: 2, backlog: 0 }]);
  });

  it('fails as a whole when a read fails, so the gauge is emptied rather than partial', async () => {
    const read = backlogWithoutCapacity(catalogOf({ m: [noWorker(1)] }), async () => {
      throw new Error('redis down');
    });
    await expect(read).rejects.toThrow('redis down');
  });
});
