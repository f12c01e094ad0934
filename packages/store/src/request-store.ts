/// <reference path="./raw-imports.d.ts" />
import {
  type CompletionMessage,
  decodeTensorMap,
  encodeCompletionMessage,
  encodeCompletionMessageWithEncodedOutputs,
  REQUEST_STATUSES,
  type RequestError,
  type RequestStatus,
} from '@inferq/protocol';
import { type JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { admissionArgs, admissionKeys, hashOf, rejectionOf } from './admission.ts';
import { type Keys, keysFor, queueName } from './keys.ts';
import cancelLua from './lua/cancel-1.lua?raw';
import claimLua from './lua/claim-0.lua?raw';
import completeLua from './lua/complete-0.lua?raw';
import expireLua from './lua/expire-0.lua?raw';
import submitLua from './lua/submit-7.lua?raw';
import type { CancelOutcome, Claim, Completion, StoredRecord, SubmitOutcome, SubmitParams } from './types.ts';

export interface RequestStoreOptions {
  redis: Redis;
  prefix: string;
  resultTtlSeconds: number;
  /** BullMQ attempts per job (the first run included). */
  jobAttempts?: number;
  /** A worker is live when it heartbeated within this window. */
  workerLivenessMs?: number;
}

/**
 * The job BullMQ carries: only request ids; tensors stay in the payload keys (BullMQ JSON-encodes
 * data). A single submit is one job with its own id as job id; a bulk submit is a few jobs of up to
 * a batch of requests each, so the queue's per-job cost is paid once per batch.
 */
export type InferJobData = { id: string } | { ids: string[] };

export const INFER_JOB_NAME = 'infer';

/** Life of a payload written before its submit script ran; the script makes it permanent. */
const PAYLOAD_PENDING_TTL_SECONDS = 600;

/** BullMQ's largest priority (2^21 - 1: it refuses 2^21); larger requested values are clamped to it. */
const MAX_BULLMQ_PRIORITY = 2_097_151;

interface ScriptedRedis extends Redis {
  inferqSubmitBuffer(
    ...args: (string | Uint8Array | number)[]
  ): Promise<[Buffer, ...(Buffer | Buffer[] | number)[]]>;
  inferqExpire(...args: (string | number)[]): Promise<string[]>;
  inferqClaimBuffer(...args: (string | number)[]): Promise<[Buffer, Buffer, Buffer?][]>;
  inferqComplete(...args: (string | Uint8Array | number)[]): Promise<number>;
  inferqCancel(...args: (string | number)[]): Promise<string>;
}

/**
 * The request lifecycle in Redis: submit (cache, coalesce or enqueue), claim, complete, cancel and
 * read. Each state change is one Lua script, so a crash between two commands cannot leave a request
 * half-moved.
 */
export class RequestStore {
  readonly keys: Keys;
  private readonly redis: ScriptedRedis;
  private readonly queues = new Map<string, Queue<InferJobData>>();
  private readonly resultTtlSeconds: number;
  private readonly jobAttempts: number;
  private readonly workerLivenessMs: number;

  constructor(options: RequestStoreOptions) {
    this.keys = keysFor(options.prefix);
    this.resultTtlSeconds = options.resultTtlSeconds;
    this.jobAttempts = options.jobAttempts ?? 3;
    this.workerLivenessMs = options.workerLivenessMs ?? 10_000;
    const redis = options.redis;
    redis.defineCommand('inferqSubmit', { numberOfKeys: 7, lua: submitLua });
    redis.defineCommand('inferqExpire', { numberOfKeys: 0, lua: expireLua });
    redis.defineCommand('inferqClaim', { numberOfKeys: 0, lua: claimLua });
    redis.defineCommand('inferqComplete', { numberOfKeys: 0, lua: completeLua });
    redis.defineCommand('inferqCancel', { numberOfKeys: 1, lua: cancelLua });
    this.redis = redis as ScriptedRedis;
  }

  /** The BullMQ queue of a model version (shared connection, created once). */
  queue(model: string, version: number): Queue<InferJobData> {
    const name = queueName(model, version);
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new Queue<InferJobData>(name, { connection: this.redis, prefix: this.keys.prefix });
      this.queues.set(name, queue);
    }
    return queue;
  }

  async submit(p: SubmitParams): Promise<SubmitOutcome> {
    const k = this.keys;
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

    // The payload goes as a plain SET just before the script, on the same connection (so Redis runs
    // it first): passed to the script, it would be copied into Lua and out again. Its TTL only
    // matters should the script never run; the script keeps it for a queued request, and it is
    // deleted for any other outcome.
    const payloadKey = k.payload(p.id);
    const [, reply] = await Promise.all([
      this.redis.set(
        payloadKey,
        Buffer.from(p.payload.buffer, p.payload.byteOffset, p.payload.byteLength),
        'EX',
        PAYLOAD_PENDING_TTL_SECONDS,
      ),
      this.redis.inferqSubmitBuffer(
        k.cache(p.cacheKey),
        k.inflight(p.cacheKey),
        k.request(p.id),
        payloadKey,
        ...admissionKeys(k, p),
        p.id,
        p.now,
        p.useCache ? '1' : '0',
        this.resultTtlSeconds,
        '',
        k.prefix,
        ...admissionArgs(p),
        ...fields,
      ),
    ]);
    const [kind, extra] = reply;
    if (kind.toString() !== 'queued') this.redis.del(payloadKey).catch(() => undefined);
    switch (kind.toString()) {
      case 'replayed':
        return { kind: 'replayed', record: toStoredRecord(hashOf(extra as Buffer[])) };
      case 'rejected':
        return { kind: 'rejected', rejection: rejectionOf(reply, p) };
      case 'cached': {
        const flat = extra as Buffer[];
        const fields: Record<string, Buffer> = {};
        for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]!.toString()] = flat[i + 1]!;
        return { kind: 'cached', record: toStoredRecord(fields) };
      }
      case 'coalesced':
        return { kind: 'coalesced', leaderId: String(extra) };
      case 'queued':
        if (p.deferEnqueue === true) return { kind: 'queued' };
        try {
          await p.beforeEnqueue;
          await this.enqueue(p.id, p.model, p.version, p.priority);
        } catch (error) {
          await this.withdraw(p, error);
          throw error;
        }
        // The unqueued entry stays until the claim script removes it: one write less per request,
        // and a job still waiting when the sweeper looks is only re-added as a no-op.
        return { kind: 'queued' };
      default:
        throw new Error(`submit script answered ${kind.toString()}`);
    }
  }

  private async enqueue(
    id: string,
    model: string,
    version: number,
    priority: number | undefined,
  ): Promise<void> {
    await this.queue(model, version).add(INFER_JOB_NAME, { id }, this.jobOptions(id, priority));
  }

  /**
   * Submits many requests of one model version: the submit scripts leave in one pipelined write,
   * and the queued requests go into one job per `requestsPerJob` (one BullMQ add each, all
   * pipelined), so the queue's per-job cost is paid once per batch rather than once per request.
   * Outcomes are in the order of `params`. Should an add fail, every request of this call that was
   * queued ends `failed` and the error is thrown.
   */
  async submitBulk(params: SubmitParams[], requestsPerJob: number): Promise<SubmitOutcome[]> {
    const outcomes = await Promise.all(params.map((p) => this.submit({ ...p, deferEnqueue: true })));
    const queued = params.filter((_, index) => outcomes[index]!.kind === 'queued');
    if (queued.length === 0) return outcomes;
    const first = queued[0]!;
    const chunk = Math.max(1, requestsPerJob);
    const jobs: { name: string; data: InferJobData; opts: JobsOptions }[] = [];
    for (let start = 0; start < queued.length; start += chunk) {
      const ids = queued.slice(start, start + chunk).map((p) => p.id);
      // The first request's id, marked, names the job: unique, and never a single submit's job id.
      jobs.push({
        name: INFER_JOB_NAME,
        data: { ids },
        opts: this.jobOptions(`bulk-${ids[0]}`, first.priority),
      });
    }
    try {
      await this.queue(first.model, first.version).addBulk(jobs);
    } catch (error) {
      await Promise.all(queued.map((p) => this.withdraw(p, error)));
      throw error;
    }
    // A bulk job's id is not a request id: the sweeper, should it see these entries, would add a
    // second job per request (harmless, but wasted), so they go now.
    this.redis.zrem(this.keys.unqueued, ...queued.map((p) => p.id)).catch(() => undefined);
    return outcomes;
  }

  private jobOptions(jobId: string, priority: number | undefined): JobsOptions {
    return {
      jobId,
      attempts: this.jobAttempts,
      backoff: { type: 'exponential', delay: 100 },
      // The record is the source of truth; the last jobs are kept only for inspection (bull-board).
      removeOnComplete: { count: 1000 },
      removeOnFail: { count: 1000 },
      ...(priority !== undefined && priority > 0
        ? { priority: Math.min(priority, MAX_BULLMQ_PRIORITY) }
        : {}),
    };
  }

  /**
   * The client gets an error, so the request must not run later: end it `failed` (which also
   * releases its in-flight key and fails any follower that attached meanwhile; the sweeper then drops
   * its unqueued entry). Best effort: Redis may be why the add failed; then the record stays queued,
   * the sweeper enqueues it later and it runs, unread but harmless.
   */
  private async withdraw(p: SubmitParams, error: unknown): Promise<void> {
    await this.complete([
      {
        id: p.id,
        model: p.model,
        version: p.version,
        createdAt: p.now,
        status: 'failed',
        error: { code: 'enqueue_failed', message: `the job could not be enqueued: ${String(error)}` },
        timings: { queueMs: 0, batchWaitMs: 0, inferMs: 0 },
        batchSize: 0,
        now: Date.now(),
      },
    ]).catch(() => undefined);
  }

  /**
   * Enqueues the jobs of requests accepted more than `olderThanMs` ago whose job was never added
   * (the API died between its submit script and BullMQ's add). Adding an existing job id is a no-op
   * in BullMQ, and a request that already ended is dropped at claim, so a spurious entry is harmless.
   * Returns how many jobs it enqueued.
   */
  async requeueOrphans(now: number, olderThanMs: number, limit = 500): Promise<number> {
    const ids = await this.redis.zrangebyscore(
      this.keys.unqueued,
      '-inf',
      now - olderThanMs,
      'LIMIT',
      0,
      limit,
    );
    let requeued = 0;
    for (const id of ids) {
      const [model, version, status, priority] = await this.redis.hmget(
        this.keys.request(id),
        'model',
        'version',
        'status',
        'priority',
      );
      if (model && version && status === 'queued') {
        await this.enqueue(id, model, Number(version), Number(priority ?? 0));
        requeued++;
      }
      await this.redis.zrem(this.keys.unqueued, id);
    }
    return requeued;
  }

  /**
   * The record. One still queued past its deadline is expired first, so a reader sees `expired` even
   * when no worker (or sweep) came by since: a deadline holds whether or not anything serves the model.
   */
  async get(id: string, now = Date.now()): Promise<StoredRecord | undefined> {
    let raw = await this.redis.hgetallBuffer(this.keys.request(id));
    if (!raw.id) return undefined;
    if (isOverdue(raw, now)) {
      await this.redis.inferqExpire(this.keys.prefix, now, this.resultTtlSeconds, 1, id);
      raw = await this.redis.hgetallBuffer(this.keys.request(id));
      if (!raw.id) return undefined;
    }
    return toStoredRecord(raw);
  }

  /**
   * Ends as `expired` (record, done channel, callback channel) up to `limit` requests still queued
   * past their deadline, and forgets deadlines of requests that are no longer queued. Workers and API
   * processes call it every second; concurrent sweeps are harmless (one script, status checked).
   * Returns the ids it expired.
   */
  async expireOverdue(now: number, limit = 500): Promise<string[]> {
    return this.redis.inferqExpire(this.keys.prefix, now, this.resultTtlSeconds, limit);
  }

  async cancel(id: string, now: number): Promise<CancelOutcome> {
    const outcome = await this.redis.inferqCancel(
      this.keys.request(id),
      this.keys.prefix,
      id,
      now,
      this.resultTtlSeconds,
    );
    return outcome as CancelOutcome;
  }

  async claim(ids: string[], now: number): Promise<Claim[]> {
    if (ids.length === 0) return [];
    // The payloads ride in the same round trip as the script, as plain GETs after it: a claimed
    // request's payload stays until its completion, and one that was dropped is simply not read.
    const pipeline = this.redis.pipeline() as unknown as ScriptedRedis & {
      exec(): Promise<[Error | null, unknown][] | null>;
    };
    void pipeline.inferqClaimBuffer(this.keys.prefix, now, this.resultTtlSeconds, ...ids);
    for (const id of ids) void pipeline.getBuffer(this.keys.payload(id));
    const replies = (await pipeline.exec()) ?? [];
    const failed = replies.find(([error]) => error !== null);
    if (failed !== undefined) throw failed[0];
    const rows = replies[0]![1] as [Buffer, Buffer, Buffer?][];
    return rows.map(([id, state, a], index): Claim => {
      const requestId = id.toString();
      const payload = replies[index + 1]?.[1] as Buffer | null | undefined;
      if (state.toString() === 'run' && a) {
        if (!payload) return { id: requestId, state: 'dropped', reason: 'missing' };
        return { id: requestId, state: 'run', payload, createdAt: Number(a.toString()) };
      }
      return { id: requestId, state: 'dropped', reason: (a?.toString() ?? 'missing') as DropReason };
    });
  }

  /** Writes every finished request of a batch in one pipelined round trip. */
  async complete(results: Completion[]): Promise<void> {
    if (results.length === 0) return;
    const pipeline = this.redis.pipeline() as unknown as ScriptedRedis & { exec(): Promise<unknown> };
    for (const r of results) {
      const totalMs = Math.max(0, r.now - r.createdAt);
      const message: CompletionMessage = {
        id: r.id,
        status: r.status,
        model: r.model,
        version: r.version,
        cached: false,
        timings: { ...r.timings, totalMs },
        ...(r.error ? { error: r.error } : {}),
        ...(r.startedAt !== undefined ? { startedAt: new Date(r.startedAt).toISOString() } : {}),
        finishedAt: new Date(r.now).toISOString(),
        ...(r.batchSize > 0 ? { batchSize: r.batchSize } : {}),
      };
      const bytes = Buffer.from(
        r.outputs
          ? encodeCompletionMessageWithEncodedOutputs(message, r.outputs)
          : encodeCompletionMessage(message),
      );
      const idOffset = bytes.indexOf(r.id);
      void pipeline.inferqComplete(
        this.keys.prefix,
        r.id,
        r.status,
        r.now,
        this.resultTtlSeconds,
        r.outputs ?? '',
        r.error ? JSON.stringify(r.error) : '',
        r.timings.queueMs,
        r.timings.batchWaitMs,
        r.timings.inferMs,
        r.batchSize,
        bytes,
        idOffset,
      );
    }
    // exec() resolves even when commands in it failed (each reply is an [error, result] pair): a
    // failed completion must reject, or the worker would settle a job whose result was never written.
    const replies = (await pipeline.exec()) as [Error | null, unknown][] | null;
    const failure = replies?.find(([error]) => error !== null)?.[0];
    if (failure) throw failure;
  }

  async heartbeat(models: string[], workerId: string, now: number): Promise<void> {
    const pipeline = this.redis.pipeline();
    for (const model of models) {
      const key = this.keys.workers(model);
      pipeline.zadd(key, now, workerId);
      pipeline.zremrangebyscore(key, '-inf', now - this.workerLivenessMs * 6);
    }
    await pipeline.exec();
  }

  /** Removes a worker at clean shutdown so readiness reflects it at once. */
  async leave(models: string[], workerId: string): Promise<void> {
    const pipeline = this.redis.pipeline();
    for (const model of models) pipeline.zrem(this.keys.workers(model), workerId);
    await pipeline.exec();
  }

  async liveWorkers(model: string, now: number): Promise<number> {
    return this.redis.zcount(this.keys.workers(model), now - this.workerLivenessMs, '+inf');
  }

  async queueDepth(model: string, version: number): Promise<number> {
    const counts = await this.queue(model, version).getJobCounts(
      'waiting',
      'active',
      'delayed',
      'prioritized',
    );
    return Object.values(counts).reduce((sum, n) => sum + n, 0);
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
  }
}

type DropReason = Extract<Claim, { state: 'dropped' }>['reason'];

const STATUSES: ReadonlySet<string> = new Set(REQUEST_STATUSES);

function toStoredRecord(raw: Record<string, Buffer>): StoredRecord {
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
  if (text('coalesced') === '1') record.coalesced = true;
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
  return record;
}

/** Queued with a deadline that has passed (expire-0.lua decides the same way). */
function isOverdue(raw: Record<string, Buffer>, now: number): boolean {
  const deadline = Number(raw.deadline?.toString() ?? 0);
  return raw.status?.toString() === 'queued' && deadline > 0 && now > deadline;
}
