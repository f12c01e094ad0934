import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BatchFormer, type BatchPolicy } from './batch-former.ts';

interface Item {
  id: string;
  group?: string;
  rows?: number;
  deadline?: number;
}

interface Harness {
  former: BatchFormer<Item>;
  /** ids of every dispatched batch, in dispatch order */
  batches: string[][];
  /** settle the oldest batch still running */
  finish(outcome?: 'resolve' | 'reject'): Promise<void>;
  setIdle(idle: boolean): void;
  /**
   * Each id is `name[*rows][:group][@deadline]`: `a*3:wide` is an item of 3 rows in group `wide`,
   * `b@40` one due at 40 ms past the start. Without `@`, an item has no deadline hook's answer (0).
   */
  add(...ids: string[]): void;
}

function harness(
  policy: BatchPolicy,
  options: { idle?: boolean; maxConcurrentBatches?: number; autoFinish?: boolean; edf?: boolean } = {},
): Harness {
  const batches: string[][] = [];
  const unsettled: { resolve(): void; reject(error: Error): void }[] = [];
  let idle = options.idle ?? false;
  const former = new BatchFormer<Item>(policy, {
    run(batch) {
      batches.push(batch.map((item) => item.id));
      if (options.autoFinish) return Promise.resolve();
      return new Promise<void>((resolve, reject) => unsettled.push({ resolve, reject }));
    },
    groupKey: (item) => item.group ?? 'default',
    rows: (item) => item.rows ?? 1,
    isSourceIdle: () => idle,
    ...(options.edf === true ? { deadline: (item: Item) => item.deadline ?? 0 } : {}),
    ...(options.maxConcurrentBatches === undefined
      ? {}
      : { maxConcurrentBatches: options.maxConcurrentBatches }),
  });
  return {
    former,
    batches,
    async finish(outcome = 'resolve') {
      const next = unsettled.shift();
      if (next === undefined) throw new Error('no batch is running');
      if (outcome === 'resolve') next.resolve();
      else next.reject(new Error('model failed'));
      await vi.advanceTimersByTimeAsync(0);
    },
    setIdle(value) {
      idle = value;
    },
    add(...ids) {
      for (const id of ids) {
        const [spec, deadline] = id.split('@');
        const [name, group] = spec!.split(':');
        const rows = name!.split('*')[1];
        former.add({
          id,
          ...(group === undefined ? {} : { group }),
          ...(rows === undefined ? {} : { rows: Number(rows) }),
          ...(deadline === undefined ? {} : { deadline: START + Number(deadline) }),
        });
      }
    },
  };
}

const START = 1_000_000;

beforeEach(() => {
  vi.useFakeTimers({ now: START });
});

afterEach(() => {
  vi.useRealTimers();
});

describe('BatchFormer', () => {
  it('with dispatchWhenIdle, runs at once while no batch runs and fills the next batch meanwhile', async () => {
    const h = harness({ maxBatchSize: 8, maxBatchDelayMs: 50, dispatchWhenIdle: true });
    h.add('a');
    await vi.advanceTimersByTimeAsync(0);
    // Nothing runs and the source is not idle, yet 'a' goes without waiting 50 ms for companions.
    expect(h.batches).toEqual([['a']]);
    h.add('b', 'c');
    await vi.advanceTimersByTimeAsync(10);
    expect(h.batches).toEqual([['a']]);
    await h.finish();
    // Held while 'a' ran: they go as soon as the model is free.
    expect(h.batches).toEqual([['a'], ['b', 'c']]);
  });

  it('forms one batch from a burst added in one tick, closed by the delay of its oldest item', async () => {
    const h = harness({ maxBatchSize: 8, maxBatchDelayMs: 5 });
    h.add('a', 'b', 'c');
    await vi.advanceTimersByTimeAsync(4);
    expect(h.batches).toEqual([]);
    expect(h.former.pending).toBe(3);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.batches).toEqual([['a', 'b', 'c']]);
    expect(h.former.pending).toBe(0);
    expect(h.former.running).toBe(1);
  });

  it('measures the delay from the oldest item, not from the latest companion', async () => {
    const h = harness({ maxBatchSize: 8, maxBatchDelayMs: 5 });
    h.add('a');
    await vi.advanceTimersByTimeAsync(3);
    h.add('b');
    await vi.advanceTimersByTimeAsync(1);
    expect(h.batches).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.batches).toEqual([['a', 'b']]);
  });

  it('dispatches a full batch at once, taking exactly the oldest maxBatchSize items', async () => {
    const h = harness({ maxBatchSize: 4, maxBatchDelayMs: 50 }, { maxConcurrentBatches: 3 });
    h.add('0', '1', '2', '3', '4', '5', '6', '7', '8', '9');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.batches).toEqual([
      ['0', '1', '2', '3'],
      ['4', '5', '6', '7'],
    ]);
    // the two left over wait for companions up to the delay, since a slot is free
    expect(h.former.pending).toBe(2);
    await vi.advanceTimersByTimeAsync(49);
    expect(h.batches).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.batches[2]).toEqual(['8', '9']);
  });

  it('closes a batch where the size policy says, and takes what it allows, never past maxBatchSize', async () => {
    // Policy: close at 3 rows; with more waiting, take up to 5 (a fake cost model's knee and best).
    const size = (waitingRows: number) => ({ closeAt: 3, takeAtMost: waitingRows > 3 ? 5 : 3 });
    const h = harness({ maxBatchSize: 4, maxBatchDelayMs: 50, size }, { maxConcurrentBatches: 3 });
    h.add('a', 'b');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.batches).toEqual([]);
    h.add('c');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.batches).toEqual([['a', 'b', 'c']]);
    h.add('d', 'e', 'f', 'g', 'h', 'i');
    await vi.advanceTimersByTimeAsync(0);
    // 6 waiting: 4 (takeAtMost 5, bounded by maxBatchSize); then 2 wait for companions.
    expect(h.batches).toEqual([
      ['a', 'b', 'c'],
      ['d', 'e', 'f', 'g'],
    ]);
    await vi.advanceTimersByTimeAsync(50);
    expect(h.batches[2]).toEqual(['h', 'i']);
  });

  it('asks the size policy per group, with the group key (a cost model speaks for one shape)', async () => {
    // Measured on group 'narrow' only: it closes at 2 there; any other group closes at maxBatchSize.
    const size = (_waitingRows: number, groupKey: string) =>
      groupKey === 'narrow' ? { closeAt: 2, takeAtMost: 2 } : { closeAt: 4, takeAtMost: 4 };
    const h = harness({ maxBatchSize: 4, maxBatchDelayMs: 50, size }, { maxConcurrentBatches: 3 });
    h.add('a:wide', 'b:wide', 'c:narrow', 'd:narrow');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.batches).toEqual([['c:narrow', 'd:narrow']]);
    h.add('e:wide', 'f:wide');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.batches.at(-1)).toEqual(['a:wide', 'b:wide', 'e:wide', 'f:wide']);
  });

  it('adds no delay when the source is idle', async () => {
    const h = harness({ maxBatchSize: 8, maxBatchDelayMs: 1000 }, { idle: true });
    h.add('a');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.batches).toEqual([['a']]);
  });

  it('flushes a forming batch as soon as the source turns idle on the next evaluation', async () => {
    const h = harness({ maxBatchSize: 8, maxBatchDelayMs: 1000 });
    h.add('a', 'b');
    await vi.advanceTimersByTimeAsync(10);
    expect(h.batches).toEqual([]);
    h.setIdle(true);
    h.add('c');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.batches).toEqual([['a', 'b', 'c']]);
  });

  it('dispatches a waiting batch when told the source ran dry, without waiting for its delay', async () => {
    const h = harness({ maxBatchSize: 8, maxBatchDelayMs: 1000 });
    h.add('a', 'b');
    await vi.advanceTimersByTimeAsync(5);
    expect(h.batches).toEqual([]);
    h.setIdle(true);
    h.former.notifySourceIdle();
    await vi.advanceTimersByTimeAsync(0);
    expect(h.batches).toEqual([['a', 'b']]);
  });

  it('ignores a source-idle notice when nothing is pending', async () => {
    const h = harness({ maxBatchSize: 8, maxBatchDelayMs: 1000 }, { idle: true });
    h.former.notifySourceIdle();
    await vi.advanceTimersByTimeAsync(0);
    expect(h.batches).toEqual([]);
    expect(h.former.pending).toBe(0);
  });

  it('never mixes groups, and serves the group with the oldest item first', async () => {
    const h = harness({ maxBatchSize: 8, maxBatchDelayMs: 5 }, { maxConcurrentBatches: 4 });
    h.add('b1:wide');
    await vi.advanceTimersByTimeAsync(1);
    h.add('a1:narrow', 'b2:wide', 'a2:narrow');
    await vi.advanceTimersByTimeAsync(3);
    expect(h.batches).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    // only the wide group's oldest item has waited 5 ms
    expect(h.batches).toEqual([['b1:wide', 'b2:wide']]);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.batches).toEqual([
      ['b1:wide', 'b2:wide'],
      ['a1:narrow', 'a2:narrow'],
    ]);
  });

  it('orders ready groups by their oldest item when only one slot is free', async () => {
    const h = harness({ maxBatchSize: 8, maxBatchDelayMs: 5 }, { idle: true });
    h.add('x1:b', 'y1:a', 'x2:b', 'y2:a', 'z1:c');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.batches).toEqual([['x1:b', 'x2:b']]);
    await h.finish();
    expect(h.batches.at(-1)).toEqual(['y1:a', 'y2:a']);
    await h.finish();
    expect(h.batches.at(-1)).toEqual(['z1:c']);
  });

  it('keeps forming the next batch while one runs and dispatches it as soon as the slot frees', async () => {
    const h = harness({ maxBatchSize: 4, maxBatchDelayMs: 100 }, { idle: true });
    h.add('a');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.batches).toEqual([['a']]);
    h.setIdle(false);
    h.add('b', 'c');
    await vi.advanceTimersByTimeAsync(1);
    h.add('d');
    await vi.advanceTimersByTimeAsync(1);
    expect(h.batches).toEqual([['a']]);
    expect(h.former.pending).toBe(3);
    // nothing else is idle and the delay has not passed, yet they waited for the model: go at once
    await h.finish();
    expect(h.batches).toEqual([['a'], ['b', 'c', 'd']]);
  });

  it('splits what piled up while busy into batches of at most maxBatchSize', async () => {
    const h = harness({ maxBatchSize: 2, maxBatchDelayMs: 100 }, { idle: true });
    h.add('a');
    await vi.advanceTimersByTimeAsync(0);
    h.setIdle(false);
    h.add('b', 'c', 'd', 'e', 'f');
    await vi.advanceTimersByTimeAsync(0);
    await h.finish();
    await h.finish();
    await h.finish();
    expect(h.batches).toEqual([['a'], ['b', 'c'], ['d', 'e'], ['f']]);
    expect(h.former.pending).toBe(0);
  });

  it('counts rows, not items: a group with maxBatchSize rows goes at once, taking the oldest that fit', async () => {
    const h = harness({ maxBatchSize: 8, maxBatchDelayMs: 100 });
    h.add('a*3', 'b*4');
    await vi.advanceTimersByTimeAsync(1);
    // 7 rows: not full, and the delay has not passed
    expect(h.batches).toEqual([]);
    h.add('c*2');
    await vi.advanceTimersByTimeAsync(0);
    // 9 rows: full; c does not fit beside a and b, and nothing younger jumps ahead of it
    expect(h.batches).toEqual([['a*3', 'b*4']]);
    expect(h.former.pending).toBe(1);
    await h.finish();
    expect(h.batches).toEqual([['a*3', 'b*4'], ['c*2']]);
  });

  it('runs an item of more rows than maxBatchSize alone', async () => {
    const h = harness({ maxBatchSize: 4, maxBatchDelayMs: 100 }, { idle: true });
    h.add('big*6', 'small');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.batches).toEqual([['big*6']]);
    await h.finish();
    expect(h.batches).toEqual([['big*6'], ['small']]);
  });

  it('counts the rows of each group on their own: rows of another group never fill a batch', async () => {
    const h = harness({ maxBatchSize: 4, maxBatchDelayMs: 10 }, { maxConcurrentBatches: 2 });
    h.add('a*3:wide', 'b*3:narrow');
    await vi.advanceTimersByTimeAsync(9);
    // 6 rows in all, but 3 per group: neither is full before the delay
    expect(h.batches).toEqual([]);
    h.add('c:wide');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.batches).toEqual([['a*3:wide', 'c:wide']]);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.batches).toEqual([['a*3:wide', 'c:wide'], ['b*3:narrow']]);
  });

  it('runs several batches at once up to maxConcurrentBatches', async () => {
    const h = harness({ maxBatchSize: 2, maxBatchDelayMs: 100 }, { idle: true, maxConcurrentBatches: 2 });
    h.add('a', 'b', 'c', 'd', 'e');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.batches).toEqual([
      ['a', 'b'],
      ['c', 'd'],
    ]);
    expect(h.former.running).toBe(2);
    expect(h.former.pending).toBe(1);
    await h.finish();
    expect(h.batches.at(-1)).toEqual(['e']);
  });

  it('passes every item through alone and at once when maxBatchSize is 0', async () => {
    const h = harness({ maxBatchSize: 0, maxBatchDelayMs: 100 });
    h.add('a', 'b', 'c');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.batches).toEqual([['a']]);
    await h.finish();
    await h.finish();
    expect(h.batches).toEqual([['a'], ['b'], ['c']]);

    const wide = harness({ maxBatchSize: 0, maxBatchDelayMs: 100 }, { maxConcurrentBatches: 3 });
    wide.add('a', 'b', 'c');
    await vi.advanceTimersByTimeAsync(0);
    expect(wide.batches).toEqual([['a'], ['b'], ['c']]);
  });

  it('survives a run that rejects or throws', async () => {
    const h = harness({ maxBatchSize: 4, maxBatchDelayMs: 100 }, { idle: true });
    h.add('a');
    await vi.advanceTimersByTimeAsync(0);
    h.add('b');
    await h.finish('reject');
    expect(h.batches).toEqual([['a'], ['b']]);
    await h.finish();
    expect(h.former.running).toBe(0);

    const ran: string[][] = [];
    const throwing = new BatchFormer<string>(
      { maxBatchSize: 4, maxBatchDelayMs: 0 },
      {
        run(batch) {
          ran.push(batch);
          if (batch[0] === 'boom') throw new Error('synchronous failure');
          return Promise.resolve();
        },
        groupKey: () => 'g',
        isSourceIdle: () => true,
      },
    );
    throwing.add('boom');
    await vi.advanceTimersByTimeAsync(0);
    throwing.add('fine');
    await vi.advanceTimersByTimeAsync(0);
    await throwing.drain();
    expect(ran).toEqual([['boom'], ['fine']]);
  });

  it("takes a group's earliest deadlines first, equal deadlines in the order added (EDF)", async () => {
    const h = harness({ maxBatchSize: 2, maxBatchDelayMs: 5 }, { edf: true });
    h.add('a@90', 'b@30', 'c@60', 'd@30', 'e@10');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.batches).toEqual([['e@10', 'b@30']]);
    await h.finish();
    expect(h.batches.at(-1)).toEqual(['d@30', 'c@60']);
    await h.finish();
    expect(h.batches.at(-1)).toEqual(['a@90']);
  });

  it('of the groups ready to go, dispatches the one holding the earliest deadline first', async () => {
    const h = harness({ maxBatchSize: 8, maxBatchDelayMs: 5 }, { idle: true, edf: true });
    h.add('x1:b@50', 'y1:a@70', 'z1:c@20', 'x2:b@80', 'y2:a@10');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.batches).toEqual([['y2:a@10', 'y1:a@70']]);
    await h.finish();
    expect(h.batches.at(-1)).toEqual(['z1:c@20']);
    await h.finish();
    expect(h.batches.at(-1)).toEqual(['x1:b@50', 'x2:b@80']);
  });

  it("counts a batch's delay from the item that has waited longest, whatever its deadline", async () => {
    const h = harness({ maxBatchSize: 8, maxBatchDelayMs: 5 }, { edf: true });
    h.add('late@500');
    await vi.advanceTimersByTimeAsync(3);
    h.add('soon@10');
    await vi.advanceTimersByTimeAsync(1);
    expect(h.batches).toEqual([]);
    // 5 ms after 'late' arrived, not after 'soon'
    await vi.advanceTimersByTimeAsync(1);
    expect(h.batches).toEqual([['soon@10', 'late@500']]);
  });

  it('drain() counts items by when they were added, not by the deadline order they run in', async () => {
    const h = harness({ maxBatchSize: 1, maxBatchDelayMs: 0 }, { edf: true });
    h.add('first@90');
    let drained = false;
    void h.former.drain().then(() => {
      drained = true;
    });
    h.add('second@10');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.batches).toEqual([['second@10']]);
    await h.finish();
    expect(drained).toBe(false);
    expect(h.batches.at(-1)).toEqual(['first@90']);
    await h.finish();
    expect(drained).toBe(true);
  });

  it('drain() resolves once everything added so far has run', async () => {
    const h = harness({ maxBatchSize: 2, maxBatchDelayMs: 10 });
    await expect(h.former.drain()).resolves.toBeUndefined();
    h.add('a', 'b', 'c');
    let drained = false;
    void h.former.drain().then(() => {
      drained = true;
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(h.batches).toEqual([['a', 'b']]);
    await h.finish();
    expect(h.batches).toEqual([['a', 'b'], ['c']]);
    h.add('later');
    expect(drained).toBe(false);
    await h.finish();
    // 'later' is still pending, but it was added after drain() was called
    expect(drained).toBe(true);
    expect(h.former.pending).toBe(1);
  });

  it('uses the injected clock for the delay', async () => {
    let clock = 0;
    const ran: number[][] = [];
    const former = new BatchFormer<number>(
      { maxBatchSize: 8, maxBatchDelayMs: 5 },
      {
        run: async (batch) => {
          ran.push(batch);
        },
        groupKey: () => 'g',
        isSourceIdle: () => false,
        now: () => clock,
      },
    );
    former.add(1);
    await vi.advanceTimersByTimeAsync(0);
    clock = 7;
    former.add(2);
    await vi.advanceTimersByTimeAsync(0);
    expect(ran).toEqual([[1, 2]]);
  });

  it('rejects impossible policies', () => {
    const hooks = { run: async () => {}, groupKey: () => '', isSourceIdle: () => true };
    expect(() => new BatchFormer({ maxBatchSize: -1, maxBatchDelayMs: 1 }, hooks)).toThrow(/maxBatchSize/);
    expect(() => new BatchFormer({ maxBatchSize: 1.5, maxBatchDelayMs: 1 }, hooks)).toThrow(/maxBatchSize/);
    expect(() => new BatchFormer({ maxBatchSize: 1, maxBatchDelayMs: -1 }, hooks)).toThrow(/maxBatchDelayMs/);
    expect(
      () => new BatchFormer({ maxBatchSize: 1, maxBatchDelayMs: 1 }, { ...hooks, maxConcurrentBatches: 0 }),
    ).toThrow(/maxConcurrentBatches/);
  });

  it('refuses an item whose rows are not a count', () => {
    const former = new BatchFormer<number>(
      { maxBatchSize: 4, maxBatchDelayMs: 1 },
      { run: async () => {}, groupKey: () => '', rows: (item) => item },
    );
    expect(() => former.add(-1)).toThrow(/rows/);
    expect(() => former.add(1.5)).toThrow(/rows/);
    expect(former.pending).toBe(0);
  });
});
