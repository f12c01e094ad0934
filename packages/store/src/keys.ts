/**
 * Every Redis key and channel name inferq uses, in one place. All share the `prefix` (default
 * `{inferq}`), whose braces make it a Redis Cluster hash tag so one Lua script may touch them all.
 */
export interface Keys {
  prefix: string;
  /** HASH: the request record (fields in record-fields.ts). */
  request(id: string): string;
  /**
   * STRING: MessagePack `{ inputs, outputs? }` the worker reads, for a payload too large to travel
   * inside its queue entry (and for any payload while its request waits held or delayed); deleted
   * once the request ends.
   */
  payload(id: string): string;
  /** STRING: MessagePack outputs map of a finished request, with the model's cache TTL. */
  cache(cacheKey: string): string;
  /** STRING: id of the leader currently computing this cache key. */
  inflight(cacheKey: string): string;
  /** LIST: ids of requests coalesced onto this leader. */
  followers(leaderId: string): string;
  /**
   * ZSET: request id -> next delivery attempt (ms) of terminal requests whose `callback.url` is still
   * to be called: every script that ends a request with a callback URL adds it; the webhook
   * dispatcher (packages/webhooks) re-scores it while it delivers and removes it once settled.
   */
  webhooks: string;
  /**
   * ZSET: request id -> acceptance time (ms) of the leaders still queued for one model version
   * (`queueName`); its size is the depth MAX_QUEUE_DEPTH bounds. The submit script adds; claim,
   * cancel and expiry remove; a full queue re-checks its oldest entries and drops any whose record
   * is no longer queued, so a missed removal cannot hold a slot for ever.
   */
  queued(queue: string): string;
  /**
   * ZSET: request id -> deadline (ms) of queued requests (leaders and followers) sent with
   * `timeoutMs`; swept every second by workers and API processes (expire-n.lua).
   */
  deadlines: string;
  /** STRING `<fingerprint> <id>`: the request an Idempotency-Key names, per tenant; IDEMPOTENCY_TTL_SECONDS. */
  idempotency(tenant: string, key: string): string;
  /** HASH `{ tokens, at }`: the tenant's token bucket (RATE_LIMIT_PER_SECOND); gone once full again. */
  rateBucket(tenant: string): string;
  /**
   * ZSET: request id -> acceptance time (ms) of requests the submit script accepted for the bullmq
   * backend and the API has not yet added to their BullMQ queue (bullmq/outbox.ts): an API that dies
   * between the two leaves them here, and a sweep adds them.
   */
  outbox: string;
  /**
   * SET of request ids whose BullMQ job is to be removed: they ended while they waited (cancelled,
   * expired); the scripts that end them add, the bullmq backend removes the jobs and the ids.
   */
  dequeued: string;
  /** BullMQ's key prefix (its queues are `<bullPrefix>:<queueName>:…`), inside the hash tag. */
  bullPrefix: string;
  /** HASH: BullMQ's meta of one queue (`queueName`), written by BullMQ; it has `paused` while paused. */
  bullMeta(queue: string): string;
  /** HASH: worker id -> JSON WorkerReport (what it serves, in which state), rewritten each heartbeat. */
  fleet: string;
  /**
   * HASH: process id (a worker's fleet id, or `api:<instance>`) -> JSON LiveStatsReport, its counts of
   * the last minute for the status page (live-stats/); written when it counted something.
   */
  stats: string;
  /** channel: a message asks every API and worker to read the model repository again now. */
  reloadChannel: string;
  /** channel: MessagePack completion message of a terminal state. */
  doneChannel(id: string): string;
  /** channel: MessagePack `{ id, status }` of a non-terminal status change (running). */
  statusChannel(id: string): string;
  /**
   * channel: completion messages of the requests one API process waits on (`Prefer: wait`), named
   * by the `notify` field of their records: one subscription per process instead of one per request.
   */
  notifyChannel(instance: string): string;
  /** The Redis keys of one model version's queue (`queueName`). */
  queue(queue: string): QueueKeys;
}

/** Consumer group every worker of a queue reads its streams with. */
export const CONSUMER_GROUP = 'workers';

/**
 * One model version's queue. Requests wait in one of two streams (bands): `normal` for requests
 * without a priority, `background` for `priority > 0`, which a worker reads only when `normal` has
 * nothing for it. Each entry carries the request id (`i`), its acceptance time (`t`), its deadline
 * (`d`, when it has one), its failed runs so far (`a`, after a retry), its rows and non-batch dims
 * (`b`, `SubmitParams.batchShape`, which the worker's batcher groups by) and, when small enough, the
 * payload itself (`p`).
 */
export interface QueueKeys {
  /** STREAM: requests without a priority. */
  normal: string;
  /** STREAM: requests with `priority > 0`. */
  background: string;
  /** STRING "1" while the queue is paused: new requests wait in `held` instead of a stream. */
  paused: string;
  /** LIST of a stream's held request ids, in arrival order (see `paused`). */
  held(stream: string): string;
  /** ZSET of a stream's request ids -> when (ms) their next attempt is due, after a failed run. */
  delayed(stream: string): string;
}

export function keysFor(prefix: string): Keys {
  return {
    prefix,
    request: (id) => `${prefix}:req:${id}`,
    payload: (id) => `${prefix}:payload:${id}`,
    cache: (cacheKey) => `${prefix}:cache:${cacheKey}`,
    inflight: (cacheKey) => `${prefix}:inflight:${cacheKey}`,
    followers: (leaderId) => `${prefix}:followers:${leaderId}`,
    webhooks: `${prefix}:webhooks`,
    queued: (queue) => `${prefix}:queued:${queue}`,
    deadlines: `${prefix}:deadlines`,
    // Tenants never contain ':' (API_KEYS splits on the first one), so a key cannot pose as a tenant.
    idempotency: (tenant, key) => `${prefix}:idem:${tenant}:${key}`,
    rateBucket: (tenant) => `${prefix}:rate:${tenant}`,
    outbox: `${prefix}:outbox`,
    dequeued: `${prefix}:dequeued`,
    bullPrefix: `${prefix}:bull`,
    bullMeta: (queue) => `${prefix}:bull:${queue}:meta`,
    fleet: `${prefix}:fleet`,
    stats: `${prefix}:stats`,
    reloadChannel: `${prefix}:reload`,
    doneChannel: (id) => `${prefix}:done:${id}`,
    statusChannel: (id) => `${prefix}:status:${id}`,
    notifyChannel: (instance) => `${prefix}:notify:${instance}`,
    queue: (queue) => queueKeysFor(prefix, queue),
  };
}

function queueKeysFor(prefix: string, queue: string): QueueKeys {
  const normal = `${prefix}:q:${queue}`;
  return {
    normal,
    background: `${normal}:background`,
    paused: `${normal}:paused`,
    held: (stream) => `${stream}:held`,
    delayed: (stream) => `${stream}:delayed`,
  };
}

/**
 * The queue serving one model version. Model names are folder names (no ':'), so `<model>.v<version>`
 * cannot collide with the key families above.
 */
export function queueName(model: string, version: number): string {
  return `${model}.v${version}`;
}

/** A queue's name (`queueName`) back into its model and version. */
export function parseQueueName(name: string): { model: string; version: number } {
  const at = name.lastIndexOf('.v');
  return { model: name.slice(0, at), version: Number(name.slice(at + 2)) };
}
