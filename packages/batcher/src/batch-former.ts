import type { BatchSize } from './batch-sizing.ts';

/**
 * When to close a batch. `maxBatchSize` counts rows (`BatchHooks.rows`), not items; 0 means the model
 * has no batch axis: every item runs alone. `maxBatchDelayMs` bounds how long the oldest item of a
 * forming batch waits for companions.
 */
export interface BatchPolicy {
  maxBatchSize: number;
  maxBatchDelayMs: number;
  /**
   * Dispatch at once when no batch is running, whatever has arrived: waiting for companions only
   * pays while the model is busy, because the next batch then fills during the run (continuous
   * batching). Under load batches still grow; at low load nobody waits. Default false.
   */
  dispatchWhenIdle?: boolean;
  /**
   * Where a group's batch closes and how many rows it takes, given the rows waiting in it and its
   * group key (the batch size policy: batch-sizing.ts). Absent: it closes at, and takes up to,
   * maxBatchSize.
   */
  size?(waitingRows: number, groupKey: string): BatchSize;
}

export interface BatchHooks<T> {
  /**
   * Runs one batch: items of one group only, and never more than `maxBatchSize` rows (but an item of
   * more rows than that runs, alone).
   */
  run(batch: T[]): Promise<void>;
  /**
   * Items with different keys never share a batch (requests whose non-batch dims differ). Asked once,
   * when the item is added: it must be known without reading the item's payload.
   */
  groupKey(item: T): string;
  /** Rows the item adds to a batch (its inputs' first axis), asked once when it is added; 1 when absent. */
  rows?(item: T): number;
  /**
   * When the item should have ended (ms, on `now`'s clock), asked once when it is added: a group's
   * batch takes its earliest deadlines first, and of the groups ready to go the one holding the
   * earliest deadline goes first (EDF). Absent: items go in the order they were added.
   */
  deadline?(item: T): number;
  /**
   * True when the source had nothing more to hand over: waiting for companions would only add
   * latency. Absent: the source never says (a former with `dispatchWhenIdle` and one run slot needs
   * no such signal).
   */
  isSourceIdle?(): boolean;
  /** Clock in milliseconds; `Date.now` when absent. */
  now?(): number;
  /** Batches allowed to run at once (default 1): while all are busy, the next batches keep forming. */
  maxConcurrentBatches?: number;
}

interface PendingItem<T> {
  item: T;
  seq: number;
  addedAt: number;
  rows: number;
  deadline: number;
}

interface Group<T> {
  key: string;
  /** Earliest deadline first, then in the order added. */
  items: PendingItem<T>[];
  /** When the item that has waited longest was added: what the delay bound counts from. */
  oldestAddedAt: number;
  /** Rows of `items`, together. */
  rows: number;
  /** Some item of this group has waited for a free run slot: it goes as soon as one frees. */
  heldBySlots: boolean;
}

interface DrainWaiter {
  /** Resolve once every item with a smaller sequence number has run. */
  upToSeq: number;
  resolve(): void;
}

/**
 * Forms size- and time-bounded batches from items handed over one at a time, with no I/O of its own.
 *
 * Items are grouped by `groupKey` as they are added, and a batch holds one group only. Per group, the
 * oldest pending item opens a batch. A batch is dispatched when a run slot is free and one of these
 * holds: its group has the rows where the policy closes a batch (`size`; `maxBatchSize` without
 * one), the
 * source is idle (nobody else is coming, so any wait is wasted), its oldest item has waited
 * `maxBatchDelayMs`, or its items had to wait for a busy slot (they already waited for the model).
 * Decisions are taken on `setImmediate` after an add (so a burst added in one tick forms one batch),
 * when the delay timer fires and when a run ends. A batch takes the group's items with the earliest
 * deadlines (`BatchHooks.deadline`; without it, the oldest), in that order, while their rows fit in
 * the policy's `takeAtMost`; of several ready groups, the one whose first item is due first goes.
 */
export class BatchFormer<T> {
  readonly #policy: BatchPolicy;
  readonly #hooks: BatchHooks<T>;
  readonly #now: () => number;
  readonly #slots: number;
  /** Map order is creation order; dispatch order is decided by each group's oldest item. */
  readonly #groups = new Map<string, Group<T>>();
  /** Sequence numbers of the items in each running batch, for drain(). */
  readonly #runningBatches = new Set<PendingItem<T>[]>();
  #drainWaiters: DrainWaiter[] = [];
  #pendingCount = 0;
  #nextSeq = 0;
  #evaluationScheduled = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerDueAt = Number.POSITIVE_INFINITY;

  constructor(policy: BatchPolicy, hooks: BatchHooks<T>) {
    if (!Number.isInteger(policy.maxBatchSize) || policy.maxBatchSize < 0) {
      throw new RangeError(`maxBatchSize must be an integer >= 0, got ${policy.maxBatchSize}`);
    }
    if (!(policy.maxBatchDelayMs >= 0)) {
      throw new RangeError(`maxBatchDelayMs must be >= 0, got ${policy.maxBatchDelayMs}`);
    }
    const slots = hooks.maxConcurrentBatches ?? 1;
    if (!Number.isInteger(slots) || slots < 1) {
      throw new RangeError(`maxConcurrentBatches must be an integer >= 1, got ${slots}`);
    }
    this.#policy = { ...policy };
    this.#hooks = hooks;
    this.#now = hooks.now ?? Date.now;
    this.#slots = slots;
  }

  /** Items waiting to be dispatched. */
  get pending(): number {
    return this.#pendingCount;
  }

  /** Batches running now. */
  get running(): number {
    return this.#runningBatches.size;
  }

  add(item: T): void {
    const key = this.#hooks.groupKey(item);
    const rows = this.#hooks.rows?.(item) ?? 1;
    if (!Number.isInteger(rows) || rows < 0)
      throw new RangeError(`an item's rows must be an integer >= 0, got ${rows}`);
    const deadline = this.#hooks.deadline?.(item) ?? 0;
    const addedAt = this.#now();
    let group = this.#groups.get(key);
    if (group === undefined) {
      group = { key, items: [], oldestAddedAt: addedAt, rows: 0, heldBySlots: false };
      this.#groups.set(key, group);
    }
    insertByDeadline(group.items, { item, seq: this.#nextSeq++, addedAt, rows, deadline });
    group.rows += rows;
    this.#pendingCount++;
    this.#scheduleEvaluation();
  }

  /**
   * Tells the former that the source just ran dry (`isSourceIdle()` turned true): a batch waiting
   * for companions goes now instead of at its delay deadline.
   */
  notifySourceIdle(): void {
    if (this.#pendingCount > 0) this.#scheduleEvaluation();
  }

  #scheduleEvaluation(): void {
    if (this.#evaluationScheduled) return;
    this.#evaluationScheduled = true;
    setImmediate(() => {
      this.#evaluationScheduled = false;
      this.#evaluate();
    });
  }

  /** Resolves once everything added so far has run (successfully or not). */
  drain(): Promise<void> {
    const upToSeq = this.#nextSeq;
    if (this.#oldestUnfinishedSeq() >= upToSeq) return Promise.resolve();
    return new Promise((resolve) => {
      this.#drainWaiters.push({ upToSeq, resolve });
    });
  }

  /** Where the group's batch closes and how many rows it takes, never more than maxBatchSize. */
  #sizeOf(group: Group<T>): BatchSize {
    const { maxBatchSize } = this.#policy;
    if (maxBatchSize === 0) return { closeAt: 1, takeAtMost: 1 };
    const chosen = this.#policy.size?.(group.rows, group.key);
    if (chosen === undefined) return { closeAt: maxBatchSize, takeAtMost: maxBatchSize };
    const bound = (rows: number): number => Math.max(1, Math.min(maxBatchSize, Math.floor(rows)));
    return { closeAt: bound(chosen.closeAt), takeAtMost: bound(chosen.takeAtMost) };
  }

  /** How many of the group's oldest items make its next batch: as many as fit, and at least one. */
  #takeCount(group: Group<T>): number {
    if (this.#policy.maxBatchSize === 0) return 1;
    const cap = this.#sizeOf(group).takeAtMost;
    let rows = 0;
    let count = 0;
    for (const pending of group.items) {
      if (count > 0 && rows + pending.rows > cap) break;
      rows += pending.rows;
      count++;
    }
    return count;
  }

  #evaluate(): void {
    const now = this.#now();
    while (this.#runningBatches.size < this.#slots) {
      const sourceIdle = this.#hooks.isSourceIdle?.() ?? false;
      const group = this.#oldestReadyGroup(now, sourceIdle);
      if (group === undefined) break;
      this.#dispatch(group);
    }

    if (this.#runningBatches.size >= this.#slots) {
      // Whatever is pending now waits for the model rather than for companions: when a slot frees it
      // goes at once (the next batch forms while this one runs).
      for (const group of this.#groups.values()) group.heldBySlots = true;
      this.#clearTimer();
      return;
    }
    this.#armTimer(now);
  }

  #isReady(group: Group<T>, now: number, sourceIdle: boolean): boolean {
    if (group.items.length === 0) return false;
    return (
      this.#policy.maxBatchSize === 0 ||
      group.rows >= this.#sizeOf(group).closeAt ||
      sourceIdle ||
      group.heldBySlots ||
      (this.#policy.dispatchWhenIdle === true && this.#runningBatches.size === 0) ||
      now - group.oldestAddedAt >= this.#policy.maxBatchDelayMs
    );
  }

  /** Of the groups ready to go, the one whose first item is due first (then: was added first). */
  #oldestReadyGroup(now: number, sourceIdle: boolean): Group<T> | undefined {
    let best: Group<T> | undefined;
    for (const group of this.#groups.values()) {
      if (!this.#isReady(group, now, sourceIdle)) continue;
      if (best === undefined || comesFirst(group.items[0]!, best.items[0]!)) best = group;
    }
    return best;
  }

  #dispatch(group: Group<T>): void {
    const taken = group.items.splice(0, this.#takeCount(group));
    for (const pending of taken) group.rows -= pending.rows;
    if (group.items.length === 0) this.#groups.delete(group.key);
    else group.oldestAddedAt = group.items.reduce((at, pending) => Math.min(at, pending.addedAt), Infinity);
    this.#pendingCount -= taken.length;
    this.#runningBatches.add(taken);

    let settled: Promise<void>;
    try {
      settled = this.#hooks.run(taken.map((pending) => pending.item));
    } catch (error) {
      settled = Promise.reject(error);
    }
    // The caller owns failure handling per item; a rejected run must only free its slot.
    settled
      .catch(() => undefined)
      .then(() => {
        this.#runningBatches.delete(taken);
        this.#resolveDrainWaiters();
        this.#evaluate();
      });
  }

  #armTimer(now: number): void {
    let dueAt = Number.POSITIVE_INFINITY;
    for (const group of this.#groups.values()) {
      if (group.items.length > 0) dueAt = Math.min(dueAt, group.oldestAddedAt + this.#policy.maxBatchDelayMs);
    }
    if (dueAt === Number.POSITIVE_INFINITY) {
      this.#clearTimer();
      return;
    }
    if (this.#timer !== undefined && this.#timerDueAt === dueAt) return;
    this.#clearTimer();
    this.#timerDueAt = dueAt;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#timerDueAt = Number.POSITIVE_INFINITY;
        this.#evaluate();
      },
      Math.max(0, dueAt - now),
    );
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerDueAt = Number.POSITIVE_INFINITY;
  }

  #oldestUnfinishedSeq(): number {
    let oldest = this.#nextSeq;
    for (const group of this.#groups.values()) {
      for (const pending of group.items) oldest = Math.min(oldest, pending.seq);
    }
    for (const batch of this.#runningBatches) {
      for (const pending of batch) oldest = Math.min(oldest, pending.seq);
    }
    return oldest;
  }

  #resolveDrainWaiters(): void {
    if (this.#drainWaiters.length === 0) return;
    const oldest = this.#oldestUnfinishedSeq();
    const stillWaiting: DrainWaiter[] = [];
    for (const waiter of this.#drainWaiters) {
      if (waiter.upToSeq <= oldest) waiter.resolve();
      else stillWaiting.push(waiter);
    }
    this.#drainWaiters = stillWaiting;
  }
}

/** Earliest deadline first; equal deadlines in the order added. */
function comesFirst<T>(a: PendingItem<T>, b: PendingItem<T>): boolean {
  return a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq);
}

/** Inserts `pending` after every item due no later than it (its sequence number is the highest). */
function insertByDeadline<T>(items: PendingItem<T>[], pending: PendingItem<T>): void {
  let low = 0;
  let high = items.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (items[middle]!.deadline <= pending.deadline) low = middle + 1;
    else high = middle;
  }
  items.splice(low, 0, pending);
}
