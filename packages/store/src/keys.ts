/**
 * Every Redis key and channel name inferq uses, in one place. All share the `prefix` (default
 * `{inferq}`), whose braces make it a Redis Cluster hash tag so one Lua script may touch them all.
 */
export interface Keys {
  prefix: string;
  /** HASH: the request record (fields in record-fields.ts). */
  request(id: string): string;
  /** STRING: MessagePack `{ inputs, outputs? }` the worker reads; deleted once the request ends. */
  payload(id: string): string;
  /** STRING: MessagePack outputs map of a finished request, with the model's cache TTL. */
  cache(cacheKey: string): string;
  /** STRING: id of the leader currently computing this cache key. */
  inflight(cacheKey: string): string;
  /** LIST: ids of requests coalesced onto this leader. */
  followers(leaderId: string): string;
  /**
   * ZSET: request id -> acceptance time (ms) of requests whose record is written but whose BullMQ
   * job may not be: the submit script adds them, a successful enqueue or a claim removes them, and
   * the worker's sweeper enqueues any that linger (an API that died between the two steps).
   */
  unqueued: string;
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
   * `timeoutMs`; swept every second by workers and API processes (expire-0.lua).
   */
  deadlines: string;
  /** STRING `<fingerprint> <id>`: the request an Idempotency-Key names, per tenant; IDEMPOTENCY_TTL_SECONDS. */
  idempotency(tenant: string, key: string): string;
  /** HASH `{ tokens, at }`: the tenant's token bucket (RATE_LIMIT_PER_SECOND); gone once full again. */
  rateBucket(tenant: string): string;
  /** ZSET: worker id -> last heartbeat (ms) of the workers serving a model. */
  workers(model: string): string;
  /** channel: MessagePack completion message of a terminal state. */
  doneChannel(id: string): string;
  /** channel: MessagePack `{ id, status }` of a non-terminal status change (running). */
  statusChannel(id: string): string;
}

export function keysFor(prefix: string): Keys {
  return {
    prefix,
    request: (id) => `${prefix}:req:${id}`,
    payload: (id) => `${prefix}:payload:${id}`,
    cache: (cacheKey) => `${prefix}:cache:${cacheKey}`,
    inflight: (cacheKey) => `${prefix}:inflight:${cacheKey}`,
    followers: (leaderId) => `${prefix}:followers:${leaderId}`,
    unqueued: `${prefix}:unqueued`,
    webhooks: `${prefix}:webhooks`,
    queued: (queue) => `${prefix}:queued:${queue}`,
    deadlines: `${prefix}:deadlines`,
    // Tenants never contain ':' (API_KEYS splits on the first one), so a key cannot pose as a tenant.
    idempotency: (tenant, key) => `${prefix}:idem:${tenant}:${key}`,
    rateBucket: (tenant) => `${prefix}:rate:${tenant}`,
    workers: (model) => `${prefix}:workers:${model}`,
    doneChannel: (id) => `${prefix}:done:${id}`,
    statusChannel: (id) => `${prefix}:status:${id}`,
  };
}

/**
 * The BullMQ queue serving one model version. BullMQ forbids ':' in queue names, and model names are
 * folder names, so `<model>.v<version>` cannot collide with the key families above.
 */
export function queueName(model: string, version: number): string {
  return `${model}.v${version}`;
}
