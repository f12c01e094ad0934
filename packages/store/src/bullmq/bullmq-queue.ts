import type { RequestError } from '@inferq/protocol';
import { type JobsOptions, Queue } from 'bullmq';
import type { RedisConnection } from '../connection.ts';
import { queueName } from '../keys.ts';
import type { InferenceQueue, IntakeOptions, QueueIntake, QueueLogger } from '../queue/queue.ts';
import type { RequestStore } from '../request-store.ts';
import type { Completion, QueueCounts, SubmitOutcome, SubmitParams } from '../types.ts';
import { BullmqIntake } from './bullmq-intake.ts';
import type { JobSource } from './job-data.ts';
import { Outbox } from './outbox.ts';

export interface BullmqQueueOptions {
  store: RequestStore;
  /** Runs per request (JOB_ATTEMPTS): the jobs' `attempts`, with BullMQ's exponential backoff. */
  jobAttempts: number;
  /** Opens a connection of the worker role (for BullMQ workers and tools that take from queues). */
  connect?: () => RedisConnection;
  /** Sweeps the outbox this often (ms); absent: no sweep from this process. */
  sweepOutboxMs?: number;
  logger?: QueueLogger;
}

/** Backoff before a failed run's next attempt: base × 2^(failed runs - 1), as on the streams backend. */
const RETRY_BASE_MS = 100;
/** Failed jobs (BullMQ's own failures: none in normal operation) kept for inspection, per queue. */
const KEEP_FAILED = { age: 86_400, count: 1_000 };
/** Jobs of ended requests removed per call. */
const REMOVE_BATCH = 500;
/** Jobs read per call while ending a queue. */
const PAGE = 500;

/**
 * The bullmq backend: one BullMQ queue per model version, named `<model>.v<version>`, under
 * `<prefix>:bull` (inside the deployment's hash tag). A job's id is its request id and its data the
 * few fields a worker groups by (job-data.ts); the tensors stay MessagePack under the payload key.
 * Submit is inferq's script (admission, cache, coalescing, record) then BullMQ's add, with the outbox
 * in between so nothing accepted is lost.
 */
export class BullmqQueue implements InferenceQueue {
  readonly backend = 'bullmq' as const;
  private readonly options: BullmqQueueOptions;
  private readonly queues = new Map<string, Queue>();
  private readonly outbox: Outbox;
  private readonly sweeper: NodeJS.Timeout | undefined;

  constructor(options: BullmqQueueOptions) {
    this.options = options;
    const jobOptions: JobsOptions = {
      attempts: options.jobAttempts,
      backoff: { type: 'exponential', delay: RETRY_BASE_MS },
      removeOnComplete: true,
      removeOnFail: KEEP_FAILED,
    };
    this.outbox = new Outbox({ store: options.store, queueFor: (m, v) => this.queueFor(m, v), jobOptions });
    if (options.sweepOutboxMs !== undefined) {
      let sweeping = false;
      this.sweeper = setInterval(() => {
        if (sweeping) return;
        sweeping = true;
        Promise.all([this.sweepOutbox(Date.now()), this.removeEnded()])
          .catch((error: unknown) => options.logger?.warn({ err: error }, 'outbox sweep failed'))
          .finally(() => {
            sweeping = false;
          });
      }, options.sweepOutboxMs);
      this.sweeper.unref();
    }
  }

  private get store(): RequestStore {
    return this.options.store;
  }

  /** The BullMQ queue of a model version (one object per version, on the store's connection). */
  queueFor(model: string, version: number): Queue {
    const name = queueName(model, version);
    let queue = this.queues.get(name);
    if (queue === undefined) {
      queue = new Queue(name, { connection: this.store.redis, prefix: this.store.keys.bullPrefix });
      queue.on('error', (error) =>
        this.options.logger?.warn({ err: error, queue: name }, 'BullMQ queue error'),
      );
      this.queues.set(name, queue);
    }
    return queue;
  }

  /**
   * Adds the jobs of requests accepted more than OUTBOX_GRACE_MS before `now` whose API stopped
   * before adding them (outbox.ts); every API and worker runs it each second. Returns how many.
   */
  sweepOutbox(now: number): Promise<number> {
    return this.outbox.sweep(now);
  }

  /** Every BullMQ queue this process has opened (Bull Board shows them). */
  openQueues(): Queue[] {
    return [...this.queues.values()];
  }

  async submit(params: SubmitParams): Promise<SubmitOutcome> {
    const outcome = await this.store.submit(params, this.store.keys.outbox);
    if (outcome.kind === 'queued') await this.publish([params]);
    return outcome;
  }

  async submitBulk(params: SubmitParams[]): Promise<SubmitOutcome[]> {
    const outcomes = await this.store.submitBulk(params, this.store.keys.outbox);
    await this.publish(params.filter((_, index) => outcomes[index]?.kind === 'queued'));
    return outcomes;
  }

  /** Accepted is accepted: a failed add leaves the request in the outbox, for a sweep to add. */
  private async publish(params: readonly SubmitParams[]): Promise<void> {
    try {
      await this.outbox.publish(params.map(sourceOf));
    } catch (error) {
      this.options.logger?.warn({ err: error }, 'adding jobs failed; the outbox sweep adds them');
    }
  }

  /**
   * Removes the jobs of requests that ended while they waited (cancel, deadline), which the scripts
   * that ended them named in `dequeued`, so that depth and counts match the streams backend's. A job
   * a worker holds cannot be removed: the worker's start script drops it.
   */
  async removeEnded(): Promise<number> {
    const { redis, keys } = this.store;
    const ids = await redis.srandmember(keys.dequeued, REMOVE_BATCH);
    if (ids.length === 0) return 0;
    const pipeline = redis.pipeline();
    for (const id of ids) pipeline.hmget(keys.request(id), 'model', 'version');
    const replies = (await pipeline.exec()) ?? [];
    let removed = 0;
    await Promise.all(
      ids.map(async (id, index) => {
        const [model, version] = (replies[index]?.[1] ?? []) as (string | null)[];
        if (model && version)
          removed += await this.queueFor(model, Number(version))
            .remove(id)
            .catch(() => 0);
      }),
    );
    await redis.srem(keys.dequeued, ...ids);
    return removed;
  }

  async pause(model: string, version: number): Promise<void> {
    await this.queueFor(model, version).pause();
  }

  async resume(model: string, version: number): Promise<number> {
    await this.removeEnded();
    const held = (await this.counts(model, version)).held;
    await this.queueFor(model, version).resume();
    return held;
  }

  isPaused(model: string, version: number): Promise<boolean> {
    return this.queueFor(model, version).isPaused();
  }

  async counts(model: string, version: number): Promise<QueueCounts> {
    await this.removeEnded();
    const queue = this.queueFor(model, version);
    const [counts, paused] = await Promise.all([
      queue.getJobCounts('wait', 'prioritized', 'active', 'delayed', 'paused'),
      queue.isPaused(),
    ]);
    const waiting = (counts.wait ?? 0) + (counts.prioritized ?? 0) + (counts.paused ?? 0);
    return {
      waiting: paused ? 0 : waiting,
      taken: counts.active ?? 0,
      held: paused ? waiting : 0,
      delayed: counts.delayed ?? 0,
    };
  }

  async depth(model: string, version: number): Promise<number> {
    const counts = await this.counts(model, version);
    return counts.waiting + counts.taken + counts.held + counts.delayed;
  }

  async versions(model: string): Promise<number[]> {
    // BullMQ writes a queue's `meta` hash on its first use.
    const stem = `${this.store.keys.bullPrefix}:${queueName(model, 0).slice(0, -1)}`;
    const versions = new Set<number>();
    let cursor = '0';
    do {
      const [next, keys] = await this.store.redis.scan(cursor, 'MATCH', `${stem}*:meta`, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) {
        const version = /^([1-9][0-9]*):meta$/.exec(key.slice(stem.length))?.[1];
        if (version !== undefined) versions.add(Number(version));
      }
    } while (cursor !== '0');
    return [...versions].sort((a, b) => a - b);
  }

  async openIntake(options: IntakeOptions): Promise<QueueIntake> {
    if (this.options.connect === undefined)
      throw new Error('this queue was opened without worker connections');
    return new BullmqIntake({
      store: this.store,
      queueName: queueName(options.model, options.version),
      connection: this.options.connect(),
      model: options.model,
      capacity: options.capacity,
      logger: options.logger,
      ...(options.direct ? { direct: options.direct } : {}),
    });
  }

  /**
   * Ends the requests of every job not yet finished (waiting, prioritized, delayed, active) `failed`
   * with `error`, then removes the jobs. Only called when no live worker serves the version, so an
   * active job's lock belongs to a worker that is gone: it is broken to remove the job. Jobs held by
   * a pause stay (the operator's choice).
   */
  async failWaiting(model: string, version: number, error: RequestError, _consumer: string): Promise<number> {
    const queue = this.queueFor(model, version);
    if (await queue.isPaused()) {
      // Paused jobs wait in the same lists as waiting ones: only delayed and active ones end.
      return this.failJobs(model, version, queue, ['delayed', 'active'], error);
    }
    return this.failJobs(model, version, queue, ['wait', 'prioritized', 'delayed', 'active'], error);
  }

  private async failJobs(
    model: string,
    version: number,
    queue: Queue,
    states: ('wait' | 'prioritized' | 'delayed' | 'active')[],
    error: RequestError,
  ): Promise<number> {
    let ended = 0;
    for (;;) {
      const jobs = (await queue.getJobs(states, 0, PAGE - 1)).filter((job) => job?.id !== undefined);
      if (jobs.length === 0) return ended;
      const now = Date.now();
      const completions: Completion[] = jobs.map((job) => ({
        id: String(job.id),
        model,
        version,
        createdAt: Number(job.data?.createdAt ?? job.timestamp),
        queueEntry: { stream: '', entry: '' },
        status: 'failed' as const,
        error,
        timings: {
          queueMs: Math.max(0, now - Number(job.data?.createdAt ?? job.timestamp)),
          batchWaitMs: 0,
          inferMs: 0,
        },
        batchSize: 0,
        now,
      }));
      await this.store.complete(completions);
      for (const job of jobs) {
        // The lock of an active job: BullMQ's key `<prefix>:<queue>:<job id>:lock`.
        await this.store.redis.del(queue.toKey(`${job.id}:lock`));
        await queue.remove(String(job.id)).catch(() => 0);
      }
      ended += jobs.length;
    }
  }

  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    const queues = [...this.queues.values()];
    this.queues.clear();
    await Promise.all(queues.map((queue) => queue.close().catch(() => undefined)));
  }
}

function sourceOf(params: SubmitParams): JobSource {
  const source: JobSource = {
    id: params.id,
    model: params.model,
    version: params.version,
    createdAt: params.now,
  };
  if (params.deadline !== undefined) source.deadline = params.deadline;
  if (params.batchShape !== undefined) source.batchShape = params.batchShape;
  if (params.priority !== undefined) source.priority = params.priority;
  if (params.trace !== undefined) source.trace = params.trace;
  return source;
}
