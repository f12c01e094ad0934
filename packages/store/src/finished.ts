/**
 * The requests a script reports it ended (lib.lua `finishedRow`), read into `FinishedRequest`s for
 * `RequestStoreOptions.onFinished`.
 */
import type { FinishedRequest, StoredRecord } from './types.ts';

/** What the script's row does not say: the batch and error of the completion it belongs to. */
export interface FinishedExtra {
  batchSize?: number;
  errorCode?: string;
}

/**
 * One row: id, status, model, version, queueMs, batchWaitMs, inferMs, totalMs, coalesced ("1"), trace.
 * An expired or cancelled request's error code is its status; `extra` speaks for one that ran.
 */
export function finishedOf(row: readonly (string | Buffer)[], extra: FinishedExtra = {}): FinishedRequest {
  const [id, status, model, version, queueMs, batchWaitMs, inferMs, totalMs, coalesced, trace] =
    row.map(String);
  const finished: FinishedRequest = {
    id: id ?? '',
    model: model ?? '',
    version: Number(version),
    status: status as FinishedRequest['status'],
    cached: false,
    coalesced: coalesced === '1',
    timings: {
      queueMs: Number(queueMs),
      batchWaitMs: Number(batchWaitMs),
      inferMs: Number(inferMs),
      totalMs: Number(totalMs),
    },
  };
  if (finished.status === 'expired' || finished.status === 'cancelled') {
    finished.errorCode = finished.status;
  } else {
    if (extra.batchSize !== undefined && extra.batchSize > 0) finished.batchSize = extra.batchSize;
    if (extra.errorCode !== undefined) finished.errorCode = extra.errorCode;
  }
  if (trace) finished.trace = trace;
  return finished;
}

/** A request answered from the cache at submit: its record, written `succeeded` by the script. */
export function finishedFromCache(record: StoredRecord): FinishedRequest {
  const { queueMs, batchWaitMs, inferMs, totalMs } = record.timings;
  const finished: FinishedRequest = {
    id: record.id,
    model: record.model,
    version: record.version,
    status: 'succeeded',
    cached: true,
    coalesced: false,
    timings: { queueMs, batchWaitMs, inferMs, totalMs },
  };
  if (record.trace !== undefined) finished.trace = record.trace;
  return finished;
}
