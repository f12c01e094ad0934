/** The answer to a `Prefer: wait` submit that ended within the wait, from its completion message. */
import {
  type CompletionMessage,
  decodeCompletionMessage,
  encodeRecord,
  encodeRecordFromCompletionMessage,
} from '@inferq/protocol';
import type { CompletionHead, StoredRecord } from '@inferq/store';
import type { Announcement } from './records.ts';
import type { SubmitResult } from './submission.ts';

function recordFromCompletion(
  done: CompletionMessage | CompletionHead,
  known: { tenant: string; createdAt: number; metadata: Record<string, unknown> | undefined },
): StoredRecord {
  const record: StoredRecord = {
    id: done.id,
    model: done.model,
    version: done.version,
    status: done.status,
    cached: done.cached,
    createdAt: new Date(known.createdAt).toISOString(),
    timings: done.timings,
    tenant: known.tenant,
  };
  if (done.startedAt !== undefined) record.startedAt = done.startedAt;
  if (done.finishedAt !== undefined) record.finishedAt = done.finishedAt;
  if (done.batchSize !== undefined) record.batchSize = done.batchSize;
  if ('outputs' in done && done.outputs !== undefined) record.outputs = done.outputs;
  if (done.error !== undefined) record.error = done.error;
  if (known.metadata !== undefined) record.metadata = known.metadata;
  return record;
}

export function answerFromCompletion(
  done: Announcement,
  known: { tenant: string; createdAt: number; metadata: Record<string, unknown> | undefined },
): SubmitResult {
  const { message, decoded } = done;
  if (message === undefined) {
    return { kind: 'finished', record: recordFromCompletion(decoded ?? done.head, known) };
  }
  return {
    kind: 'announced',
    encode: (format) =>
      format === 'msgpack'
        ? encodeRecordFromCompletionMessage(message, {
            createdAt: new Date(known.createdAt).toISOString(),
            ...(known.metadata === undefined ? {} : { metadata: known.metadata }),
          })
        : encodeRecord(recordFromCompletion(decodeCompletionMessage(message), known), format),
  };
}
