import { type CompletionMessage, encodeCompletionMessageForOutputs } from '@inferq/protocol';
import type { ChainableCommander } from 'ioredis';
import type { RedisConnection } from './connection.ts';
import { finishedFromCache, finishedOf } from './finished.ts';
import { type Keys, keysFor, type QueueKeys, queueName } from './keys.ts';
import { packForLua } from './lua-args.ts';
import { execOrThrow, type ScriptedRedis, type SubmitReply, withScripts } from './scripts.ts';
import { isOverdue, toStoredRecord } from './stored-record.ts';
import {
  outcomeOf,
  PAYLOAD_PENDING_TTL_SECONDS,
  type PreparedSubmit,
  prepareSubmit,
  submitArgs,
} from './submit-request.ts';
import type {
  CancelOutcome,
  Completion,
  FinishedRequest,
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
  /**
   * Told of every request that a script run through this store ended (docs/observability.md): a
   * cache hit, a batch's requests and their followers, an expiry, a cancel. Each request ends once,
   * so a process that logs from here writes exactly one line per request it ended. Absent: none.
   */
  onFinished?: (requests: FinishedRequest[]) => void;
}

/** Restarts of a request whose worker stopped before finishing it, before it ends `worker_lost`. */
export const MAX_STALLS = 2;

/**
 * The request lifecycle in Redis, the same for every queue backend: submit (cache, coalesce or
 * enqueue), start, complete, retry, cancel, expire and read. Each state change is one Lua script
 * (scripts.ts), so a crash between two commands cannot leave a request half-moved. Administering the
 * streams queue (pause, counts, leases, promotion) is `StreamQueueAdmin`'s (streams/stream-admin.ts).
 * A little over the usual size: each method is the client half of one script, and keeping every
 * state change of a request in one class is what shows its whole life in one place.
 */
export class RequestStore {
  readonly keys: Keys;
  readonly redis: RedisConnection;
  private readonly scripts: ScriptedRedis;
  private readonly resultTtlSeconds: number;
  private readonly onFinished: ((requests: FinishedRequest[]) => void) | undefined;
  /** A submit already left in this tick of the event loop (see `submit`). */
  private submittedThisTick = false;

  constructor(options: RequestStoreOptions) {
    this.keys = keysFor(options.prefix);
    this.resultTtlSeconds = options.resultTtlSeconds;
    this.onFinished = options.onFinished;
    const redis = options.redis;
    this.redis = redis;
    this.scripts = withScripts(redis);
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
    const prepared = prepareSubmit(this.keys, this.resultTtlSeconds, p, outbox);
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
    const args = submitArgs(this.keys, [prepared], packForLua(prepared.request));
    const submitted = alone
      ? this.scripts.inferqSubmitNowBuffer(...args)
      : this.scripts.inferqSubmitBuffer(...args);
    // Both awaited together: with Redis gone both fail, and neither failure may go unhandled.
    const [, reply] = await this.settled([prepared], Promise.all([written, submitted]));
    const outcome = this.outcomeOf(reply, prepared);
    if (outcome.kind === 'cached') this.reportCached([outcome]);
    return outcome;
  }

  /** Cache hits end at submit: reported as finished (onFinished). */
  private reportCached(outcomes: readonly SubmitOutcome[]): void {
    if (this.onFinished === undefined) return;
    const cached: FinishedRequest[] = [];
    for (const outcome of outcomes)
      if (outcome.kind === 'cached') cached.push(finishedFromCache(outcome.record));
    if (cached.length > 0) this.onFinished(cached);
  }

  /** Tells onFinished of requests a script ended. */
  private report(finished: FinishedRequest[]): void {
    if (finished.length > 0) this.onFinished?.(finished);
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
    const prepared = params.map((p) => prepareSubmit(this.keys, this.resultTtlSeconds, p, outbox));
    const written = this.writeLargePayloads(prepared);
    const submitted = this.scripts.inferqSubmitBuffer(
      ...submitArgs(this.keys, prepared, packForLua(prepared.map((one) => one.request))),
      'many',
    ) as unknown as Promise<SubmitReply[]>;
    const [, replies] = await this.settled(prepared, Promise.all([written, submitted]));
    const outcomes = replies.map((reply, index) => this.outcomeOf(reply, prepared[index]!));
    this.reportCached(outcomes);
    return outcomes;
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

  /** The reply's outcome; a payload written for a request that was not queued is deleted. */
  private outcomeOf(reply: SubmitReply, prepared: PreparedSubmit): SubmitOutcome {
    const outcome = outcomeOf(reply, prepared);
    if (outcome.kind !== 'queued' && !prepared.inline)
      this.redis.del(prepared.payloadKey).catch(() => undefined);
    return outcome;
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

  /** expire-n.lua over `ids`, which it checks again (status, deadline); answers those it expired. */
  private async expireIds(ids: readonly string[], now: number): Promise<string[]> {
    const k = this.keys;
    const keys = ids.flatMap((id) => [k.request(id), k.followers(id), k.payload(id)]);
    const rows = await this.scripts.inferqExpire(
      2 + keys.length,
      k.deadlines,
      k.webhooks,
      ...keys,
      k.prefix,
      now,
      this.resultTtlSeconds,
      ...ids,
    );
    if (this.onFinished !== undefined) this.report(rows.map((row) => finishedOf(row)));
    return rows.map((row) => String(row[0]));
  }

  async cancel(id: string, now: number, options: { running?: boolean } = {}): Promise<CancelOutcome> {
    const k = this.keys;
    const reply = await this.scripts.inferqCancel(
      k.request(id),
      k.deadlines,
      k.webhooks,
      k.followers(id),
      k.payload(id),
      k.prefix,
      id,
      now,
      this.resultTtlSeconds,
      options.running === true ? '1' : '',
    );
    if (typeof reply === 'string') return reply as CancelOutcome;
    if (this.onFinished !== undefined) this.report([finishedOf(reply[1])]);
    return 'cancelled';
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
    const [rows, ended] = replies[0] as Awaited<ReturnType<ScriptedRedis['inferqStartBuffer']>>;
    if (this.onFinished !== undefined) this.report(ended.map((row) => finishedOf(row)));
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
        r.timings.steps === undefined ? '' : JSON.stringify(r.timings.steps),
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
    const ended = await this.scripts.inferqComplete(
      2 + keys.length,
      k.deadlines,
      k.webhooks,
      ...keys,
      k.prefix,
      String(results[0]!.now),
      String(this.resultTtlSeconds),
      packForLua(rows),
    );
    if (this.onFinished === undefined) return;
    const finished: FinishedRequest[] = [];
    ended.forEach((records, index) => {
      const result = results[index]!;
      const extra = {
        batchSize: result.batchSize,
        ...(result.error ? { errorCode: result.error.code } : {}),
      };
      for (const row of records) finished.push(finishedOf(row, extra));
    });
    this.report(finished);
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

  async ping(): Promise<void> {
    await this.redis.ping();
  }
}

type DropReason = Extract<StartOutcome, { state: 'dropped' }>['reason'];
