import { type Keys, queueName } from './keys.ts';
import type { SubmitParams, SubmitRejection } from './types.ts';

/**
 * K[5..7] of submit-n.lua: the model version's queued set, the tenant's idempotency entry and
 * token bucket. Always passed (a script declares its keys up front); the script leaves alone the
 * ones its ARGV turns off.
 */
export function admissionKeys(keys: Keys, p: SubmitParams): string[] {
  return [
    keys.queued(queueName(p.model, p.version)),
    keys.idempotency(p.tenant, p.admission?.idempotency?.key ?? ''),
    keys.rateBucket(p.tenant),
  ];
}

/** A[7..12] of submit-n.lua: the limits, the idempotency fingerprint and window, the deadline. */
export function admissionArgs(p: SubmitParams): (string | number)[] {
  const admission = p.admission;
  const rate = admission?.rateLimit;
  const idempotency = admission?.idempotency;
  return [
    admission?.maxQueueDepth ?? 0,
    rate?.perSecond ?? 0,
    rate?.burst ?? 0,
    idempotency?.fingerprint ?? '',
    idempotency?.ttlSeconds ?? 0,
    p.deadline ?? 0,
  ];
}

/** A[15..16] of submit-n.lua: the deadline's queue bound and the fleet's drain rate ("" without one). */
export function deadlineArgs(p: SubmitParams): string[] {
  const bound = p.admission?.deadline;
  return bound === undefined ? ['', ''] : [String(bound.maxWaitingAhead), String(bound.itemsPerSecond)];
}

/** The rejection a `{ "rejected", reason, ... }` answer of submit-n.lua stands for. */
export function rejectionOf(reply: readonly unknown[], p: SubmitParams): SubmitRejection {
  const reason = String(reply[1]);
  const admission = p.admission;
  switch (reason) {
    case 'queue-full':
      return {
        reason,
        retryAfterSeconds: Number(reply[2]),
        depth: Number(reply[3]),
        maxQueueDepth: admission?.maxQueueDepth ?? 0,
      };
    case 'rate-limited':
      return {
        reason,
        retryAfterSeconds: Number(reply[2]),
        perSecond: admission?.rateLimit?.perSecond ?? 0,
        burst: admission?.rateLimit?.burst ?? 0,
      };
    case 'idempotency-key-reused':
      return { reason, key: admission?.idempotency?.key ?? '' };
    case 'deadline-unmeetable':
      return {
        reason,
        retryAfterSeconds: Number(reply[2]),
        depth: Number(reply[3]),
        maxWaitingAhead: admission?.deadline?.maxWaitingAhead ?? 0,
      };
    default:
      throw new Error(`submit script rejected for an unknown reason: ${reason}`);
  }
}

/** A flat HGETALL reply (field, value, field, value...) as a field -> value map. */
export function hashOf(flat: readonly Buffer[]): Record<string, Buffer> {
  const fields: Record<string, Buffer> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]!.toString()] = flat[i + 1]!;
  return fields;
}
