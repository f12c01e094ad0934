import type { JobsOptions, Queue } from 'bullmq';
import type { RequestStore } from '../request-store.ts';
import { bullPriorityOf, INFER_JOB_NAME, type InferJobData, type JobSource, jobDataOf } from './job-data.ts';

/** How long an accepted request may sit in the outbox before a sweep adds it (its API may have died). */
export const OUTBOX_GRACE_MS = 5_000;
/** Requests a sweep moves per call. */
const SWEEP_BATCH = 500;

export interface OutboxOptions {
  store: RequestStore;
  /** The BullMQ queue of a model version. */
  queueFor(model: string, version: number): Queue;
  /** The options every inference job is added with (attempts, backoff, removal). */
  jobOptions: JobsOptions;
}

/**
 * The step between inferq's submit script and BullMQ's add. The script accepts a request (record,
 * admission, cache, coalescing) and puts its id in the outbox in the same step; the API then adds its
 * job to the model version's BullMQ queue and takes it out of the outbox. Should the API die between
 * the two, a sweep (every API and worker runs one) adds what has waited longer than OUTBOX_GRACE_MS.
 * The job id is the request id, so an add made twice makes one job; a job added again after its
 * request ended is dropped by the worker's start script, so no request runs twice.
 */
export class Outbox {
  private readonly options: OutboxOptions;

  constructor(options: OutboxOptions) {
    this.options = options;
  }

  /** Adds the jobs of accepted requests and clears them from the outbox. */
  async publish(sources: readonly JobSource[]): Promise<void> {
    if (sources.length === 0) return;
    const byQueue = new Map<Queue, JobSource[]>();
    for (const source of sources) {
      const queue = this.options.queueFor(source.model, source.version);
      const list = byQueue.get(queue) ?? [];
      list.push(source);
      byQueue.set(queue, list);
    }
    await Promise.all(
      [...byQueue].map(([queue, list]) =>
        list.length === 1
          ? queue.add(INFER_JOB_NAME, jobDataOf(list[0]!), this.jobOptionsOf(list[0]!))
          : queue.addBulk(
              list.map((source) => ({
                name: INFER_JOB_NAME,
                data: jobDataOf(source),
                opts: this.jobOptionsOf(source),
              })),
            ),
      ),
    );
    const { redis, keys } = this.options.store;
    await redis.zrem(keys.outbox, ...sources.map((source) => source.id));
  }

  /**
   * Adds the jobs of requests that waited in the outbox longer than `graceMs` (their API stopped
   * between the script and the add), and forgets those no longer queued. Returns how many it added.
   */
  async sweep(now: number, graceMs = OUTBOX_GRACE_MS): Promise<number> {
    const { redis, keys } = this.options.store;
    const ids = await redis.zrangebyscore(keys.outbox, '-inf', now - graceMs, 'LIMIT', 0, SWEEP_BATCH);
    if (ids.length === 0) return 0;
    const pipeline = redis.pipeline();
    for (const id of ids) {
      pipeline.hmget(
        keys.request(id),
        'status',
        'model',
        'version',
        'createdAt',
        'deadline',
        'batch',
        'priority',
        'trace',
      );
    }
    const replies = (await pipeline.exec()) ?? [];
    const sources: JobSource[] = [];
    const gone: string[] = [];
    ids.forEach((id, index) => {
      const [error, fields] = replies[index] ?? [];
      if (error) return;
      const [status, model, version, createdAt, deadline, batch, priority, trace] = fields as (
        | string
        | null
      )[];
      if (status !== 'queued' || !model || !version) {
        gone.push(id);
        return;
      }
      const source: JobSource = { id, model, version: Number(version), createdAt: Number(createdAt ?? now) };
      if (deadline) source.deadline = Number(deadline);
      if (batch) source.batchShape = batch;
      if (priority) source.priority = Number(priority);
      if (trace) source.trace = trace;
      sources.push(source);
    });
    if (gone.length > 0) await redis.zrem(keys.outbox, ...gone);
    await this.publish(sources);
    return sources.length;
  }

  private jobOptionsOf(source: JobSource): JobsOptions {
    const priority = bullPriorityOf(source.priority);
    return { ...this.options.jobOptions, jobId: source.id, ...(priority === undefined ? {} : { priority }) };
  }
}

export type { InferJobData };
