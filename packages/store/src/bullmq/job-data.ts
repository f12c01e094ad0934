import type { Job } from 'bullmq';
import type { Delivery } from '../types.ts';

/** The name of every inference job in inferq's BullMQ queues. */
export const INFER_JOB_NAME = 'infer';

/**
 * The data of an inference job (JSON, as BullMQ stores it). The job's id is the request id; the
 * tensors are not here: they stay MessagePack under the request's payload key (`<prefix>:payload:<id>`),
 * where the worker reads them, so no tensor is ever base64 inside JSON.
 */
export interface InferJobData {
  /** When the request was accepted (ms since epoch). */
  createdAt: number;
  /** Its deadline (ms since epoch), when it has one. */
  deadline?: number;
  /** Its rows and non-batch dims (`SubmitParams.batchShape`), for the worker's batcher. */
  batchShape?: string;
  /** Its packed W3C trace context (`SubmitParams.trace`), for the worker's spans. */
  trace?: string;
}

/** What a queued request needs to become a BullMQ job. */
export interface JobSource {
  id: string;
  model: string;
  version: number;
  createdAt: number;
  deadline?: number;
  batchShape?: string;
  priority?: number;
  trace?: string;
}

/** BullMQ's priority for inferq's priority: every `priority > 0` request waits behind the others. */
export function bullPriorityOf(priority: number | undefined): number | undefined {
  return priority !== undefined && priority > 0 ? 1 : undefined;
}

export function jobDataOf(source: JobSource): InferJobData {
  const data: InferJobData = { createdAt: source.createdAt };
  if (source.deadline !== undefined && source.deadline > 0) data.deadline = source.deadline;
  if (source.batchShape !== undefined && source.batchShape !== '') data.batchShape = source.batchShape;
  if (source.trace !== undefined && source.trace !== '') data.trace = source.trace;
  return data;
}

/**
 * A job as the worker holds it: no stream and no entry (the scripts then leave the queue alone), its
 * queue named instead; the payload is read from its key when the batch starts.
 */
export function deliveryOf(job: Job<InferJobData>): Delivery {
  const id = String(job.id);
  const data = job.data ?? ({} as Partial<InferJobData>);
  const delivery: Delivery = {
    id,
    queue: job.queueName,
    stream: '',
    entry: '',
    createdAt: Number(data.createdAt ?? job.timestamp),
    attempts: job.attemptsMade,
    redelivered: job.stalledCounter > 0,
  };
  if (data.deadline !== undefined) delivery.deadline = Number(data.deadline);
  if (data.batchShape !== undefined) delivery.batchShape = String(data.batchShape);
  if (data.trace !== undefined) delivery.trace = String(data.trace);
  if (job.opts.attempts !== undefined) delivery.maxAttempts = job.opts.attempts;
  return delivery;
}
