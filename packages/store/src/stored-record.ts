import {
  decodeTensorMap,
  REQUEST_STATUSES,
  type RequestError,
  type RequestStatus,
  type StepTiming,
} from '@inferq/protocol';
import type { StoredRecord } from './types.ts';

const STATUSES: ReadonlySet<string> = new Set(REQUEST_STATUSES);

/** A record as HGETALL returns it, typed. */
export function toStoredRecord(raw: Record<string, Buffer>): StoredRecord {
  const text = (field: string): string | undefined => raw[field]?.toString();
  const num = (field: string): number => Number(text(field) ?? 0);
  const iso = (field: string): string | undefined => {
    const value = text(field);
    return value ? new Date(Number(value)).toISOString() : undefined;
  };
  const status = text('status') ?? 'queued';
  if (!STATUSES.has(status)) throw new Error(`record has unknown status ${status}`);
  const record: StoredRecord = {
    id: text('id') ?? '',
    model: text('model') ?? '',
    version: num('version'),
    status: status as RequestStatus,
    cached: text('cached') === '1',
    createdAt: iso('createdAt') ?? new Date(0).toISOString(),
    timings: {
      queueMs: num('queueMs'),
      batchWaitMs: num('batchWaitMs'),
      inferMs: num('inferMs'),
      totalMs: num('totalMs'),
    },
    tenant: text('tenant') ?? 'public',
  };
  const steps = text('steps');
  if (steps) record.timings.steps = JSON.parse(steps) as Record<string, StepTiming>;
  if (text('coalesced') === '1') record.coalesced = true;
  const cacheKey = text('cacheKey');
  if (cacheKey) record.cacheKey = cacheKey;
  const startedAt = iso('startedAt');
  if (startedAt) record.startedAt = startedAt;
  const finishedAt = iso('finishedAt');
  if (finishedAt) record.finishedAt = finishedAt;
  if (raw.batchSize) record.batchSize = num('batchSize');
  if (raw.outputs && raw.outputs.length > 0) record.outputs = decodeTensorMap(raw.outputs);
  const error = text('error');
  if (error) record.error = JSON.parse(error) as RequestError;
  const metadata = text('metadata');
  if (metadata) record.metadata = JSON.parse(metadata) as Record<string, unknown>;
  const deadline = num('deadline');
  if (deadline > 0) record.deadline = deadline;
  const trace = text('trace');
  if (trace) record.trace = trace;
  return record;
}

/** Queued with a deadline that has passed (expire-0.lua decides the same way). */
export function isOverdue(raw: Record<string, Buffer>, now: number): boolean {
  const deadline = Number(raw.deadline?.toString() ?? 0);
  return raw.status?.toString() === 'queued' && deadline > 0 && now > deadline;
}
