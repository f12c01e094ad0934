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
