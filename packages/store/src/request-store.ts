/// <reference path="./raw-imports.d.ts" />
import {
  type CompletionMessage,
  decodeTensorMap,
  encodeCompletionMessageForOutputs,
  REQUEST_STATUSES,
  type RequestError,
  type RequestStatus,
} from '@inferq/protocol';
import type { ChainableCommander } from 'ioredis';
import { admissionArgs, admissionKeys, hashOf, rejectionOf } from './admission.ts';
import { isCluster, type RedisConnection, SUBMIT_NOW_COMMAND } from './connection.ts';
import { CONSUMER_GROUP, type Keys, keysFor, type QueueKeys, queueName } from './keys.ts';
import cancelLua from './lua/cancel-5.lua?raw';
import completeLua from './lua/complete-n.lua?raw';
import expireLua from './lua/expire-n.lua?raw';
import handBackLua from './lua/hand-back-n.lua?raw';
import libLua from './lua/lib.lua?raw';
import promoteLua from './lua/promote-n.lua?raw';
import renewLua from './lua/renew-1.lua?raw';
import resumeLua from './lua/resume-5.lua?raw';
import retryLua from './lua/retry-n.lua?raw';
import startLua from './lua/start-n.lua?raw';
import submitLua from './lua/submit-n.lua?raw';
import { type LuaValue, packForLua } from './lua-args.ts';
import type {
  CancelOutcome,
  Completion,
  QueueCounts,
  QueueEntryRef,
  StartOutcome,
  StoredRecord,
  SubmitOutcome,
  SubmitParams,
} from './types.ts';

export interface RequestStoreOptions {
  redis: RedisConnection;
  prefix: string;
  resultTtlSeconds: number;
}

/**
 * Payloads up to this size travel inside their queue entry, so the worker that takes the entry can
 * run it without another round trip. Larger ones go to a key of their own with a plain SET, which
 * Redis keeps without copying, where a stream entry (and a script argument) would copy every byte:
 * measured on the bench machine, 81 µs of Redis time for a 110 KB XADD against 1 µs for the SET.
 */
export const INLINE_PAYLOAD_BYTES = 4096;

/** Restarts of a request whose worker stopped before finishing it, before it ends `worker_lost`. */
export const MAX_STALLS = 2;

/** Life of a payload written before its submit script ran; the script makes it permanent. */
const PAYLOAD_PENDING_TTL_SECONDS = 600;

/** Requests enqueued again per stream and call of the promote script. */
const PROMOTE_BATCH = 500;

type Arg = string | Buffer | number;

type SubmitReply = [Buffer, ...(Buffer | Buffer[] | number)[]];

/** One request ready for submit-n.lua. */
interface PreparedSubmit {
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

interface ScriptCommands {
  inferqSubmitBuffer(...args: Arg[]): Promise<SubmitReply>;
  inferqSubmitNowBuffer(...args: Arg[]): Promise<SubmitReply>;
  inferqStartBuffer(...args: Arg[]): Promise<[Buffer, Buffer, Buffer?][]>;
  inferqComplete(...args: Arg[]): Promise<number>;
  inferqRetry(...args: Arg[]): Promise<number>;
  inferqPromote(...args: Arg[]): Promise<number>;
  inferqResume(...args: Arg[]): Promise<number>;
  inferqHandBack(...args: Arg[]): Promise<number>;
  inferqRenew(...args: Arg[]): Promise<string[]>;
  inferqExpire(...args: Arg[]): Promise<string[]>;
  inferqCancel(...args: Arg[]): Promise<string>;
  inferqWriteProbe(key: string): Promise<number>;
}

type ScriptedRedis = RedisConnection & ScriptCommands;

/** The stream of a queue a request waits in: `priority > 0` is the background band. */
export function streamFor(queue: QueueKeys, priority: number | undefined): string {
  return priority !== undefined && priority > 0 ? queue.background : queue.normal;
}

/**
 * The request lifecycle in Redis: submit (cache, coalesce or enqueue), start, complete, retry,
 * cancel and read. Each state change is one Lua script, so a crash between two commands cannot leave
 * a request half-moved; the queue itself is a pair of Redis streams per model version read through a
 * consumer group (`QueueConsumer`), whose pending entries are the leases crash recovery reclaims.
 */
export class RequestStore {
  readonly keys: Keys;
  readonly redis: RedisConnection;
  private readonly scripts: ScriptedRedis;
  private readonly resultTtlSeconds: number;
  /** A submit already left in this tick of the event loop (see `submit`). */
  private submittedThisTick = false;

  constructor(options: RequestStoreOptions) {
    this.keys = keysFor(options.prefix);
    this.resultTtlSeconds = options.resultTtlSeconds;
    const redis = options.redis;
    const withLib = (lua: string): string => `${libLua}\n${lua}`;
    // Every key a script knows of at call time is declared (a `-n` script takes the count first),
    // so a cluster client routes it to the master of the prefix's slot.
    redis.defineCommand('inferqSubmit', { lua: submitLua });
    redis.defineCommand(SUBMIT_NOW_COMMAND, { lua: submitLua });
    redis.defineCommand('inferqStart', { lua: withLib(startLua) });
    redis.defineCommand('inferqComplete', { lua: withLib(completeLua) });
    redis.defineCommand('inferqRetry', { lua: withLib(retryLua) });
    redis.defineCommand('inferqPromote', { lua: promoteLua });
    redis.defineCommand('inferqResume', { numberOfKeys: 5, lua: resumeLua });
    redis.defineCommand('inferqHandBack', { lua: withLib(handBackLua) });
    redis.defineCommand('inferqRenew', { numberOfKeys: 1, lua: renewLua });
    redis.defineCommand('inferqExpire', { lua: withLib(expireLua) });
    redis.defineCommand('inferqCancel', { numberOfKeys: 5, lua: withLib(cancelLua) });
    // A declared script that may write: Redis refuses it as it would refuse a submit (OOM, MISCONF,
    // READONLY). Its key (untouched) sends it to the master that owns the prefix's slot in a cluster.
    redis.defineCommand('inferqWriteProbe', { numberOfKeys: 1, lua: '#!lua\nreturn 1' });
    this.redis = redis;
    this.scripts = redis as ScriptedRedis;
  }

  /** The keys of a model version's queue. */
  queueKeys(model: string, version: number): QueueKeys {
    return this.keys.queue(queueName(model, version));
  }

  /** The queue (`queueName`) a request is held in: named, or read from its stream's key. */
  private queueOf(ref: QueueEntryRef): string {
    if (ref.queue !== undefined) return ref.queue;
    if (ref.stream === '') throw new Error(`request ${ref.id} is held without a stream or a queue name`);
    return this.queueOfStream(ref.stream);
  }

  /** The queue (`queueName`) a stream of this prefix belongs to: `<prefix>:q:<queue>[:background]`. */
  private queueOfStream(stream: string): string {
    const rest = stream.slice(this.keys.prefix.length + ':q:'.length);
    return rest.endsWith(':background') ? rest.slice(0, -':background'.length) : rest;
  }

  /**
   * With `outbox` (a backend that enqueues after the script, such as bullmq), a queued request's id
   * goes to that sorted set instead of a stream, and its payload always under its own key.
   */
  async submit(p: SubmitParams, outbox?: string): Promise<SubmitOutcome> {
    const prepared = this.prepareSubmit(p, outbox);
    // The first submit of a tick leaves at once; the others of the same tick join the connection's
    // pipeline, sent in one write at the tick's end. Alone (low load) a request waits for no
    // pipeline (about 60 µs per round trip on the bench machine); under load the writes still merge.
    const alone = !this.submittedThisTick;
    if (alone) {
      this.submittedThisTick = true;
      setImmediate(() => {
        this.submittedThisTick = false;
      });
    }
    const written = this.writeLargePayloads([prepared]);
    const args = this.submitArgs([prepared], packForLua(prepared.request));
    const submitted = alone
      ? this.scripts.inferqSubmitNowBuffer(...args)
      : this.scripts.inferqSubmitBuffer(...args);
    // Both awaited together: with Redis gone both fail, and neither failure may go unhandled.
    const [, reply] = await this.settled([prepared], Promise.all([written, submitted]));
    return this.outcomeOf(reply, prepared);
  }

  /**
   * Rejects, like a submit would, when Redis refuses writes now (full at maxmemory under noeviction,
   * unable to persist, a replica): for readiness. Resolves when a submit could write.
   */
  async writeProbe(): Promise<void> {
    await this.scripts.inferqWriteProbe(this.keys.deadlines);
  }

  /**
   * A failed submit leaves no payload behind: a SET that went through before the script was refused
   * (Redis full, say) would otherwise hold memory until its TTL.
   */
  private async settled<T>(prepared: readonly PreparedSubmit[], submitted: Promise<T>): Promise<T> {
    try {
      return await submitted;
    } catch (error: unknown) {
      const keys = prepared.filter((one) => !one.inline).map((one) => one.payloadKey);
      if (keys.length > 0) this.redis.del(...keys).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Submits many requests of one model version (infer:bulk) in one script call, in order: the cost
   * of a call (the client's and Redis's) is paid once for the body instead of once per request.
   * Outcomes are in the order of `params`.
   */
  async submitBulk(params: SubmitParams[], outbox?: string): Promise<SubmitOutcome[]> {
    if (params.length === 0) return [];
    const prepared = params.map((p) => this.prepareSubmit(p, outbox));
    const written = this.writeLargePayloads(prepared);
    const submitted = this.scripts.inferqSubmitBuffer(
      ...this.submitArgs(prepared, packForLua(prepared.map((one) => one.request))),
      'many',
    ) as unknown as Promise<SubmitReply[]>;
    const [, replies] = await this.settled(prepared, Promise.all([written, submitted]));
    return replies.map((reply, index) => this.outcomeOf(reply, prepared[index]!));
  }

  /** submit-n.lua's key count and keys for `prepared`, then `argument`. */
  private submitArgs(prepared: readonly PreparedSubmit[], argument: Buffer): Arg[] {
    const keys: Arg[] = [2 + prepared.length * 10, this.keys.deadlines, this.keys.webhooks];
    for (const one of prepared) keys.push(...one.keys);
    keys.push(argument);
    return keys;
  }

  /** What submit-n.lua needs for one request: its keys, and [arguments, record fields]. */
  private prepareSubmit(p: SubmitParams, outbox: string | undefined): PreparedSubmit {
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
    if (p.notify) fields.push('notify', p.notify);
    // On the record too: entries made again later (resume, retry, hand-back) carry it from there.
    if (p.batchShape) fields.push('batch', p.batchShape);
    // For a backend that enqueues after the script (bullmq's outbox sweep needs it from the record).
    if (p.priority !== undefined && p.priority > 0) fields.push('priority', String(p.priority));

    const queue = this.queueKeys(p.model, p.version);
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
        queue.paused,
        queue.held(stream),
      ],
      request: [
        [
          p.id,
          String(p.now),
          p.useCache ? '1' : '0',
          String(this.resultTtlSeconds),
          inline ? payload : '',
          k.prefix,
          ...admissionArgs(p).map(String),
          p.batchShape ?? '',
          outbox === undefined ? '' : '1',
        ],
        fields,
      ],
    };
  }

  /**
   * A large payload goes as a plain SET just before the script, on the same connection (so Redis
   * runs it first): passed to the script, it would be copied into Lua and into the stream. The SET is
   * never pipelined (the connection leaves `set` out of its auto-pipelining): a pipeline would copy
   * the payload once more into the write of the whole tick. Its TTL only matters should the script
   * never run; the script keeps it for a queued request, and any other outcome deletes it.
   */
  private writeLargePayloads(prepared: readonly PreparedSubmit[]): Promise<unknown> {
    const large = prepared.filter((one) => !one.inline);
    if (large.length === 0) return Promise.resolve();
    return Promise.all(
      large.map((one) => this.redis.set(one.payloadKey, one.payload, 'EX', PAYLOAD_PENDING_TTL_SECONDS)),
    );
  }

  private outcomeOf(reply: SubmitReply, prepared: PreparedSubmit): SubmitOutcome {
    const [kind, extra] = reply;
    const outcome = kind.toString();
    if (outcome !== 'queued' && !prepared.inline) this.redis.del(prepared.payloadKey).catch(() => undefined);
    switch (outcome) {
      case 'replayed':
        return { kind: 'replayed', record: toStoredRecord(hashOf(extra as Buffer[])) };
      case 'rejected':
        return { kind: 'rejected', rejection: rejectionOf(reply, prepared.params) };
      case 'cached':
        return { kind: 'cached', record: toStoredRecord(hashOf(extra as Buffer[])) };
      case 'coalesced':
        return { kind: 'coalesced', leaderId: String(extra) };
      case 'queued':
        return { kind: 'queued' };
      default:
        throw new Error(`submit script answered ${outcome}`);
    }
  }

  /**
   * The record. One still queued past its deadline is expired first, so a reader sees `expired` even
   * when no worker (or sweep) came by since: a deadline holds whether or not anything serves the model.
   */
  async get(id: string, now = Date.now()): Promise<StoredRecord | undefined> {
    let raw = await this.redis.hgetallBuffer(this.keys.request(id));
    if (!raw.id) return undefined;
    if (isOverdue(raw, now)) {
      await this.expireIds([id], now);
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
    // Two phases (expire-n.lua): the ids first, so the script can declare their records.
    const ids = await this.redis.zrangebyscore(this.keys.deadlines, '-inf', `(${now}`, 'LIMIT', 0, limit);
    return ids.length === 0 ? [] : this.expireIds(ids, now);
  }

  /** expire-n.lua over `ids`, which it checks again (status, deadline). */
  private expireIds(ids: readonly string[], now: number): Promise<string[]> {
    const k = this.keys;
    const keys = ids.flatMap((id) => [k.request(id), k.followers(id), k.payload(id)]);
    return this.scripts.inferqExpire(
      2 + keys.length,
      k.deadlines,
      k.webhooks,
      ...keys,
      k.prefix,
      now,
      this.resultTtlSeconds,
      ...ids,
    );
  }

  async cancel(id: string, now: number): Promise<CancelOutcome> {
    const k = this.keys;
    const outcome = await this.scripts.inferqCancel(
      k.request(id),
      k.deadlines,
      k.webhooks,
      k.followers(id),
      k.payload(id),
      k.prefix,
      id,
      now,
      this.resultTtlSeconds,
    );
    return outcome as CancelOutcome;
  }

  /**
   * Starts requests a worker took from its queue (start-0.lua): running, or dropped, or lost. The
   * payloads of `readPayloadOf` (those that did not travel inside their entry) are read in the same
   * round trip, with plain GETs after the script: through Lua, each would be copied twice more.
   */
  async start(
    refs: readonly QueueEntryRef[],
    now: number,
    readPayloadOf: ReadonlySet<string> = new Set(),
  ): Promise<StartOutcome[]> {
    if (refs.length === 0) return [];
    const pipeline = this.redis.pipeline() as ChainableCommander & ScriptedRedis;
    const k = this.keys;
    void pipeline.inferqStartBuffer(
      2 + refs.length * 5,
      k.deadlines,
      k.webhooks,
      ...refs.flatMap((r) => {
        const queue = this.queueOf(r);
        // Without a stream (bullmq) the version's stream name stands in: in the slot, never touched.
        return [
          k.request(r.id),
          r.stream || k.queue(queue).normal,
          k.followers(r.id),
          k.payload(r.id),
          k.queued(queue),
        ];
      }),
      k.prefix,
      now,
      this.resultTtlSeconds,
      MAX_STALLS,
      ...refs.flatMap((r) => [r.id, r.entry]),
    );
    const reads = refs.filter((r) => readPayloadOf.has(r.id)).map((r) => r.id);
    for (const id of reads) void pipeline.getBuffer(this.keys.payload(id));
    const replies = await execOrThrow(pipeline);
    const payloads = new Map<string, Buffer>();
    reads.forEach((id, index) => {
      const payload = replies[index + 1] as Buffer | null;
      if (payload) payloads.set(id, payload);
    });
    const rows = replies[0] as [Buffer, Buffer, Buffer?][];
    return rows.map(([rawId, state, detail]): StartOutcome => {
      const id = rawId.toString();
      switch (state.toString()) {
        case 'run': {
          const payload = payloads.get(id);
          const createdAt = Number(detail?.toString() ?? 0);
          return payload === undefined
            ? { id, state: 'run', createdAt }
            : { id, state: 'run', createdAt, payload };
        }
        case 'lost':
          return { id, state: 'lost' };
        default:
          return { id, state: 'dropped', reason: (detail?.toString() ?? 'missing') as DropReason };
      }
    });
  }

  /** Writes every finished request of a batch, and acknowledges their queue entries, in one script call. */
  async complete(results: readonly Completion[]): Promise<void> {
    if (results.length === 0) return;
    // One argument for the whole batch (complete-0.lua): every argument costs the client real time.
    const rows: (string | Buffer)[][] = [];
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
      // Large outputs stay out of the message (MESSAGE_OUTPUT_BYTES): waiters read them from the record.
      const bytes = Buffer.from(encodeCompletionMessageForOutputs(message, r.outputs));
      rows.push([
        r.id,
        r.queueEntry?.stream ?? '',
        r.queueEntry?.entry ?? '',
        r.status,
        r.outputs ? Buffer.from(r.outputs.buffer, r.outputs.byteOffset, r.outputs.byteLength) : '',
        r.error ? JSON.stringify(r.error) : '',
        String(r.timings.queueMs),
        String(r.timings.batchWaitMs),
        String(r.timings.inferMs),
        String(r.batchSize),
        r.startedAt === undefined ? '' : String(r.startedAt),
        bytes,
        String(bytes.indexOf(r.id)),
      ]);
    }
    const k = this.keys;
    const keys = results.flatMap((r) => {
      const queue = queueName(r.model, r.version);
      return [
        k.request(r.id),
        r.queueEntry?.stream || k.queue(queue).normal,
        k.followers(r.id),
        k.payload(r.id),
        k.queued(queue),
      ];
    });
    // One time for the batch: its results were taken together.
    await this.scripts.inferqComplete(
      2 + keys.length,
      k.deadlines,
      k.webhooks,
      ...keys,
      k.prefix,
      String(results[0]!.now),
      String(this.resultTtlSeconds),
      packForLua(rows),
    );
  }

  /**
   * Requests whose run failed with attempts left wait `due` for their next one (retry-0.lua); the
   * payload of an entry that carried it is kept under its key meanwhile.
   */
  async retryLater(items: readonly { ref: QueueEntryRef; due: number; payload?: Buffer }[]): Promise<void> {
    if (items.length === 0) return;
    const k = this.keys;
    await this.scripts.inferqRetry(
      items.length * 4,
      ...items.flatMap(({ ref }) => {
        const queue = k.queue(this.queueOf(ref));
        const stream = ref.stream || queue.normal;
        return [k.request(ref.id), stream, queue.delayed(stream), k.payload(ref.id)];
      }),
      // No due time without a stream: that queue (bullmq) schedules the next run itself.
      ...items.flatMap(({ ref, due, payload }) => [
        ref.id,
        ref.entry,
        ref.stream === '' ? '' : due,
        payload ?? '',
      ]),
    );
  }

  /** Enqueues again the requests of a model version whose retry is due. Returns how many. */
  async promoteDue(model: string, version: number, now: number): Promise<number> {
    const queue = this.queueKeys(model, version);
    const streams = [queue.normal, queue.background];
    // Two phases (promote-n.lua): the due ids first, so the script can declare their records.
    const pipeline = this.redis.pipeline();
    for (const stream of streams)
      pipeline.zrangebyscore(queue.delayed(stream), '-inf', now, 'LIMIT', 0, PROMOTE_BATCH);
    const due = (await execOrThrow(pipeline)) as string[][];
    const keys: string[] = [];
    const ids: string[] = [];
    streams.forEach((stream, index) => {
      for (const id of due[index] ?? []) {
        keys.push(this.keys.request(id), stream, queue.delayed(stream));
        ids.push(id);
      }
    });
    if (ids.length === 0) return 0;
    return this.scripts.inferqPromote(keys.length, ...keys, now, ...ids);
  }

  /** A stopping worker's unstarted requests go back to their streams (hand-back-0.lua). Returns how many. */
  async handBack(items: readonly { ref: QueueEntryRef; payload?: Buffer }[]): Promise<number> {
    if (items.length === 0) return 0;
    return this.scripts.inferqHandBack(
      items.length * 2,
      ...items.flatMap(({ ref }) => [this.keys.request(ref.id), ref.stream]),
      ...items.flatMap(({ ref, payload }) => [ref.id, ref.entry, payload ?? '']),
    );
  }

  /**
   * Resets the lease of every entry a worker still holds; returns those another worker reclaimed
   * meanwhile (or that are no longer pending).
   */
  async renewLeases(stream: string, consumer: string, entries: readonly string[]): Promise<string[]> {
    if (entries.length === 0) return [];
    return this.scripts.inferqRenew(stream, CONSUMER_GROUP, consumer, ...entries);
  }

  /**
   * New requests of a model version wait in its held list instead of reaching workers, until
   * `resume`; requests already in its streams are not affected.
   */
  async pause(model: string, version: number): Promise<void> {
    await this.redis.set(this.queueKeys(model, version).paused, '1');
  }

  /** Lifts `pause`: the held requests are enqueued in arrival order. Returns how many. */
  async resume(model: string, version: number): Promise<number> {
    const queue = this.queueKeys(model, version);
    return this.scripts.inferqResume(
      queue.paused,
      queue.normal,
      queue.held(queue.normal),
      queue.background,
      queue.held(queue.background),
      this.keys.prefix,
    );
  }

  /** The versions of `model` whose queue exists in Redis (a worker or a request created it). */
  async queuedVersions(model: string): Promise<number[]> {
    // The normal stream's key without its version number: `…<model>.v`.
    const stem = this.queueKeys(model, 0).normal.slice(0, -1);
    const versions = new Set<number>();
    // SCAN answers for one node: on a cluster, every master is scanned (the prefix's hash tag puts
    // the keys on one of them, but which one is the cluster's business).
    const nodes = isCluster(this.redis) ? this.redis.nodes('master') : [this.redis];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', `${stem}*`, 'COUNT', 1000);
        cursor = next;
        for (const key of keys) {
          const version = /^[1-9][0-9]*$/.exec(key.slice(stem.length))?.[0];
          if (version !== undefined && this.queueKeys(model, Number(version)).normal === key)
            versions.add(Number(version));
        }
      } while (cursor !== '0');
    }
    return [...versions].sort((a, b) => a - b);
  }

  /** Whether `pause` holds the model version's new requests. */
  async isPaused(model: string, version: number): Promise<boolean> {
    return (await this.redis.exists(this.queueKeys(model, version).paused)) === 1;
  }

  /** Where the requests of a model version's queue are (both bands together). */
  async queueCounts(model: string, version: number): Promise<QueueCounts> {
    const queue = this.queueKeys(model, version);
    const streams = [queue.normal, queue.background];
    const pipeline = this.redis.pipeline();
    for (const stream of streams) {
      pipeline.xlen(stream);
      pipeline.xpending(stream, CONSUMER_GROUP);
      pipeline.llen(queue.held(stream));
      pipeline.zcard(queue.delayed(stream));
    }
    // XPENDING fails with NOGROUP before any worker created the group: nothing is taken then.
    const replies = (await pipeline.exec()) ?? [];
    const counts: QueueCounts = { waiting: 0, taken: 0, held: 0, delayed: 0 };
    for (let i = 0; i < streams.length; i++) {
      const [length, pending, held, delayed] = replies.slice(i * 4, i * 4 + 4).map(([error, value]) => {
        if (error === null) return value;
        if (/NOGROUP/.test(String(error))) return undefined;
        throw error;
      });
      // Entries are deleted when acknowledged, so the stream holds exactly the waiting and taken ones.
      const taken = Array.isArray(pending) ? Number(pending[0] ?? 0) : 0;
      counts.taken += taken;
      counts.waiting += Math.max(0, Number(length ?? 0) - taken);
      counts.held += Number(held ?? 0);
      counts.delayed += Number(delayed ?? 0);
    }
    return counts;
  }

  /** Requests of a model version waiting or running: what autoscaling and `inferq_queue_depth` read. */
  async queueDepth(model: string, version: number): Promise<number> {
    const counts = await this.queueCounts(model, version);
    return counts.waiting + counts.taken + counts.held + counts.delayed;
  }

  /**
   * Entries ever added to a model version's streams (`XINFO STREAM`'s entries-added, both bands): it
   * moves with every request that reaches the queue, and only then.
   */
  async entriesAdded(model: string, version: number): Promise<number> {
    const queue = this.queueKeys(model, version);
    let total = 0;
    for (const stream of [queue.normal, queue.background]) {
      let info: unknown;
      try {
        info = await this.redis.xinfo('STREAM', stream);
      } catch (error) {
        if (/no such key/i.test(String(error))) continue;
        throw error;
      }
      const flat = info as unknown[];
      const index = flat.indexOf('entries-added');
      total += index >= 0 ? Number(flat[index + 1]) : 0;
    }
    return total;
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }
}

type DropReason = Extract<StartOutcome, { state: 'dropped' }>['reason'];

/** exec() resolves even when commands in it failed (each reply an [error, result] pair): reject instead. */
async function execOrThrow(pipeline: ChainableCommander): Promise<unknown[]> {
  const replies = (await pipeline.exec()) ?? [];
  const failed = replies.find(([error]) => error !== null);
  if (failed !== undefined) throw failed[0];
  return replies.map(([, value]) => value);
}

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
