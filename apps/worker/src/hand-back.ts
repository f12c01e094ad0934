import type { Logger } from '@inferq/observability';
import { type Job, WaitingError } from 'bullmq';

/** A request of a batch as hand-back needs it: its BullMQ job and the callback that settles it. */
export interface HandBackItem {
  job: Job;
  settle(error?: Error): void;
}

/**
 * A stopping worker finishes the batch it is running but does not start the ones it has formed
 * since: their jobs go back to the wait list (at its head, so another worker takes them next) with
 * their attempts untouched, instead of holding the shutdown or stalling until their lock expires.
 *
 * A job goes back only when every request it carries is in `batch` (`requestsOf(job)` of them): a bulk
 * job whose requests are spread over several batches runs to the end here. A job that BullMQ refuses
 * to move (its lock is gone) runs too. Returns the items still to run.
 */
export async function handBackUnstarted<T extends HandBackItem>(
  batch: readonly T[],
  requestsOf: (job: Job) => number,
  logger: Logger,
): Promise<T[]> {
  const byJob = new Map<Job, T[]>();
  for (const item of batch) {
    const items = byJob.get(item.job) ?? [];
    items.push(item);
    byJob.set(item.job, items);
  }
  const toRun = new Set<T>();
  let handedBack = 0;
  await Promise.all(
    [...byJob].map(async ([job, items]) => {
      if (items.length !== requestsOf(job) || job.token === undefined) {
        for (const item of items) toRun.add(item);
        return;
      }
      try {
        await job.moveToWait(job.token);
      } catch (error) {
        logger.warn({ err: error, jobId: job.id }, 'could not hand a job back; running it before stopping');
        for (const item of items) toRun.add(item);
        return;
      }
      handedBack++;
      // BullMQ takes this rejection to mean "already moved back", not a failed attempt.
      for (const item of items) item.settle(new WaitingError());
    }),
  );
  if (handedBack > 0) logger.info({ jobs: handedBack }, 'stopping: handed unstarted jobs back to the queue');
  // Keep the batch's order for what still runs.
  return batch.filter((item) => toRun.has(item));
}
