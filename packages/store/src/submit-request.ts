/**
 * What submit-n.lua needs for one request, prepared in the client: its keys, its arguments and record
 * fields packed as one MessagePack value, and where its payload goes (inside the queue entry, or
 * under its own key); and the outcome its reply names.
 */
import { admissionArgs, admissionKeys, deadlineArgs, hashOf, rejectionOf } from './admission.ts';
import { type Keys, type QueueKeys, queueName } from './keys.ts';
import type { LuaValue } from './lua-args.ts';
import type { Arg, SubmitReply } from './scripts.ts';
import { toStoredRecord } from './stored-record.ts';
import type { SubmitOutcome, SubmitParams } from './types.ts';

/**
 * Payloads up to this size travel inside their queue entry, so the worker that takes the entry can
 * run it without another round trip. Larger ones go to a key of their own with a plain SET, which
 * Redis keeps without copying, where a stream entry (and a script argument) would copy every byte:
 * measured on the bench machine, 81 µs of Redis time for a 110 KB XADD against 1 µs for the SET.
 */
export const INLINE_PAYLOAD_BYTES = 4096;

/** Life of a payload written before its submit script ran; the script makes it permanent. */
export const PAYLOAD_PENDING_TTL_SECONDS = 600;

/** One request ready for submit-n.lua. */
export interface PreparedSubmit {
  params: SubmitParams;
  payloadKey: string;
  payload: Buffer;
  /** The payload travels inside the queue entry (else under its key, written before the script). */
  inline: boolean;
  /** Its ten keys (K[1..10] of submit-n.lua). */
  keys: string[];
  /** Its arguments and record fields: [A, fields]. */
  request: LuaValue;
}

/** The stream of a queue a request waits in: `priority > 0` is the background band. */
export function streamFor(queue: QueueKeys, priority: number | undefined): string {
  return priority !== undefined && priority > 0 ? queue.background : queue.normal;
}

/** What submit-n.lua needs for one request: its keys, and [arguments, record fields]. */
export function prepareSubmit(
  k: Keys,
  resultTtlSeconds: number,
  p: SubmitParams,
  outbox: string | undefined,
): PreparedSubmit {
  const fields: string[] = [
    'id',
    p.id,
    'model',
    p.model,
    'version',
    String(p.version),
    'tenant',
    p.tenant,
    'createdAt',
    String(p.now),
    'cacheKey',
    p.useCache ? p.cacheKey : '',
    'cacheTtl',
    String(p.useCache ? p.cacheTtlSeconds : 0),
    'deadline',
    String(p.deadline ?? 0),
  ];
  if (p.callbackChannel) fields.push('callbackChannel', p.callbackChannel);
  if (p.callbackUrl) fields.push('callbackUrl', p.callbackUrl);
  if (p.metadata) fields.push('metadata', JSON.stringify(p.metadata));
  if (p.notify) fields.push('notify', p.notify);
  // On the record too: entries made again later (resume, retry, hand-back) carry it from there.
  if (p.batchShape) fields.push('batch', p.batchShape);
  // For a backend that enqueues after the script (bullmq's outbox sweep needs it from the record).
  if (p.priority !== undefined && p.priority > 0) fields.push('priority', String(p.priority));
  // On the record too: the webhook's headers, and the entries made again later, read it there.
  if (p.trace) fields.push('trace', p.trace);

  const name = queueName(p.model, p.version);
  const queue = k.queue(name);
  const stream = streamFor(queue, p.priority);
  const payloadKey = k.payload(p.id);
  const payload = Buffer.from(p.payload.buffer, p.payload.byteOffset, p.payload.byteLength);
  const inline = outbox === undefined && payload.byteLength <= INLINE_PAYLOAD_BYTES;
  return {
    params: p,
    payloadKey,
    payload,
    inline,
    keys: [
      k.cache(p.cacheKey),
      k.inflight(p.cacheKey),
      k.request(p.id),
      payloadKey,
      ...admissionKeys(k, p),
      outbox ?? stream,
      // Paused: the streams' flag, or BullMQ's queue meta hash (its `paused` field) behind an outbox.
      outbox === undefined ? queue.paused : k.bullMeta(name),
      queue.held(stream),
    ],
    request: [
      [
        p.id,
        String(p.now),
        p.useCache ? '1' : '0',
        String(resultTtlSeconds),
        inline ? payload : '',
        k.prefix,
        ...admissionArgs(p).map(String),
        p.batchShape ?? '',
        outbox === undefined ? '' : '1',
        ...deadlineArgs(p),
        p.trace ?? '',
      ],
      fields,
    ],
  };
}

/** submit-n.lua's key count and keys for `prepared`, then `argument`. */
export function submitArgs(k: Keys, prepared: readonly PreparedSubmit[], argument: Buffer): Arg[] {
  const keys: Arg[] = [2 + prepared.length * 10, k.deadlines, k.webhooks];
  for (const one of prepared) keys.push(...one.keys);
  keys.push(argument);
  return keys;
}

/** The outcome a submit-n.lua reply names (the caller deletes a payload it wrote for one not queued). */
export function outcomeOf(reply: SubmitReply, prepared: PreparedSubmit): SubmitOutcome {
  const [kind, extra] = reply;
  const outcome = kind.toString();
  switch (outcome) {
    case 'replayed':
      return { kind: 'replayed', record: toStoredRecord(hashOf(extra as Buffer[])) };
    case 'rejected':
      return { kind: 'rejected', rejection: rejectionOf(reply, prepared.params) };
    case 'cached':
      return { kind: 'cached', record: toStoredRecord(hashOf(extra as Buffer[])) };
    case 'coalesced': {
      const leaderTrace = reply[2]?.toString();
      return leaderTrace
        ? { kind: 'coalesced', leaderId: String(extra), leaderTrace }
        : { kind: 'coalesced', leaderId: String(extra) };
    }
    case 'queued':
      return { kind: 'queued' };
    default:
      throw new Error(`submit script answered ${outcome}`);
  }
}
