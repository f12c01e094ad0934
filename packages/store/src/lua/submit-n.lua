#!lua
--[[
  Submit one request in one round trip: admit it (idempotency replay, the tenant's token bucket, the
  model version's queue depth, the queue its deadline allows), then serve it from the cache, attach it to an identical request
  already in flight, or create its record and enqueue it: an entry in its band's stream, which wakes
  a blocked worker at once (or, while the queue is paused, its id in the band's held list).

  KEYS[1] <prefix>:deadlines  (ZSET id -> deadline)
  KEYS[2] <prefix>:webhooks   (ZSET id -> due, for a cache hit with a callback URL)
  KEYS[3..] ten per request, in order: K[1..10] below
  ARGV[1] one MessagePack array [A, fields]: the arguments A and the record fields (one argument
          where there would be dozens: a client pays for each argument it sends). Every value is a
          string, as in ARGV; the payload a binary string. With ARGV[2] "many", ARGV[1] is an array
          of such requests (infer:bulk), submitted in order in this one call, and the reply is the
          array of their replies.

  Keys named at run time, not declared: the leader's record and followers list (the leader's id is
  read from K[2]), the records a full queue re-checks (ids read from K[5]) and the record an
  idempotency entry names (read from K[6]). They carry the prefix's hash tag (`{inferq}` by
  default), so in a Redis Cluster they live in the declared keys' slot.

  K[1]  cache key           <prefix>:cache:<cacheKey>
  K[2]  in-flight key       <prefix>:inflight:<cacheKey>
  K[3]  request record      <prefix>:req:<id>
  K[4]  payload             <prefix>:payload:<id>
  K[5]  queued set          <prefix>:queued:<model>.v<version>  (ZSET id -> createdAt)
  K[6]  idempotency entry   <prefix>:idem:<tenant>:<key>        (unused without A[10])
  K[7]  token bucket        <prefix>:rate:<tenant>              (unused when A[8] is 0)
  K[8]  band stream         <prefix>:q:<model>.v<version>[:background]
  K[9]  paused flag         <prefix>:q:<model>.v<version>:paused; with A[14], BullMQ's queue meta
                            hash <prefix>:bull:<model>.v<version>:meta, paused when it has `paused`
  K[10] held list           <band stream>:held
  A[1]  id
  A[2]  now (ms)
  A[3]  "1" to use the cache and coalesce, "0" not to
  A[4]  result TTL (s) for a record that is already terminal
  A[5]  payload bytes to carry inside the queue entry (small ones), or "" when the caller wrote
           K[4] itself (with a TTL) just before this script, on the same connection
  A[6]  key prefix
  A[7]  most queued requests of this model version; 0: no limit
  A[8]  tokens per second of the tenant's bucket; 0: no rate limit
  A[9]  bucket capacity (burst)
  A[10] fingerprint of the submission, "" without an idempotency key
  A[11] idempotency window (s)
  A[12] deadline (ms since epoch); 0: none
  A[13] batch shape (rows and non-batch dims, for the worker's batcher), "" when none; also among
           the record fields as `batch`, whence resume, promote and hand-back copy it to new entries
  A[14] "1" for a queue backend that enqueues after this script (bullmq: docs/design.md), "" for
           the streams: K[8] is then the outbox (<prefix>:outbox, ZSET id -> acceptance time), where
           the request's id goes instead of a stream entry, its payload (written by the caller) kept
           under K[4]; K[10] is unused
  A[15] most requests that may wait ahead of this one for it to meet its deadline (-1: none may),
           or "" for no such check (early refusal: @inferq/batcher's deadline-admission.ts)
  A[16] requests a second the live workers clear (for Retry-After), with A[15]
  A[17] the request's W3C trace context, packed (traceparent, then a space and tracestate), or ""
           (absent from an older client): also among the record fields as `trace`, whence resume,
           promote and hand-back copy it to new entries (as `c`, like `b`)
  fields: the record fields, as field/value pairs

  Returns
  { "replayed", record }       the idempotency key names a request that still exists; its HGETALL
  { "rejected", "idempotency-key-reused" }
  { "rejected", "rate-limited", retryAfterSeconds }
  { "rejected", "queue-full", retryAfterSeconds, depth }
  { "rejected", "deadline-unmeetable", retryAfterSeconds, depth }
                               more wait than A[15] allows, while some wait and the queue runs
  { "cached", record }         the record was written as succeeded from the cache entry; its HGETALL
  { "coalesced", leader, leaderTrace }
                               the record follows <leader> (whose trace context is leaderTrace, "" if
                               none); nothing is enqueued
  { "queued" }                 record written and the request enqueued (or held while paused)
  A rejection writes nothing: no token is taken, no key is remembered. Any outcome but "queued"
  leaves K[4] to the caller, which deletes it.

  The `#!lua` line declares the script (no flags: it may write, and must not run out of memory):
  Redis then refuses the whole call with OOM before running it when it is at `maxmemory` under
  `noeviction`. Without it a script starts anyway, its first write that needs memory fails, but a
  write that needs none (PERSIST) lets every later one through: a request was queued without its
  payload while the client was told the submit failed. Before any write, every request whose payload
  the caller wrote is checked to have it (the SET may have been refused): an error, nothing written.
]]
-- How many of the oldest queued-set entries a full queue re-checks: an entry whose record is no
-- longer queued (its request ended by a path that bypasses our scripts) would otherwise hold a slot
-- for ever. Stale entries drift to the front as live ones are claimed, so the front is where to look.
local PRUNE_BATCH = 16
local QUEUE_FULL_RETRY_AFTER_SECONDS = 1

-- Requests queued for the version (K[5]); from `atLeast` on, stale entries at its front are pruned
-- first, so that a count that would refuse the request is a true one.
local function queuedDepth(K, prefix, atLeast)
  local depth = redis.call('ZCARD', K[5])
  if depth < atLeast then return depth end
  for _, queuedId in ipairs(redis.call('ZRANGE', K[5], 0, PRUNE_BATCH - 1)) do
    if redis.call('HGET', prefix .. ':req:' .. queuedId, 'status') ~= 'queued' then
      redis.call('ZREM', K[5], queuedId)
      depth = depth - 1
    end
  end
  return depth
end

local function isPaused(K, behindOutbox)
  if behindOutbox then return redis.call('HEXISTS', K[9], 'paused') == 1 end
  return redis.call('EXISTS', K[9]) == 1
end

local function submit(K, A, fields)
  local id, now, useCache, resultTtl, payload, prefix = A[1], tonumber(A[2]), A[3], A[4], A[5], A[6]
  local maxDepth, ratePerSecond, burst = tonumber(A[7]), tonumber(A[8]), tonumber(A[9])
  local fingerprint, idempotencyTtl, deadline = A[10], A[11], tonumber(A[12])
  local deadlines = KEYS[1]

  if fingerprint ~= '' then
    local entry = redis.call('GET', K[6])
    if entry then
      local space = string.find(entry, ' ', 1, true)
      if string.sub(entry, 1, space - 1) ~= fingerprint then return { 'rejected', 'idempotency-key-reused' } end
      local record = redis.call('HGETALL', prefix .. ':req:' .. string.sub(entry, space + 1))
      if #record > 0 then return { 'replayed', record } end
      -- The record outlived its result TTL: the key no longer names anything, so this is a new request.
    end
  end

  -- The bucket is read now but charged only once the request is accepted.
  local tokensLeft, bucketAt
  if ratePerSecond > 0 then
    local bucket = redis.call('HMGET', K[7], 'tokens', 'at')
    local level = tonumber(bucket[1]) or burst
    bucketAt = tonumber(bucket[2]) or now
    -- API processes' clocks may disagree a little: time never runs backwards for a bucket.
    level = math.min(burst, level + math.max(0, now - bucketAt) * ratePerSecond / 1000)
    if level < 1 then return { 'rejected', 'rate-limited', math.ceil((1 - level) / ratePerSecond) } end
    tokensLeft = level - 1
    bucketAt = math.max(bucketAt, now)
  end

  local function accept()
    if tokensLeft then
      redis.call('HSET', K[7], 'tokens', string.format('%.6f', tokensLeft), 'at', string.format('%d', bucketAt))
      -- Once it would be full again the bucket is worth nothing: let it go (absent means full).
      redis.call('PEXPIRE', K[7], math.ceil(burst / ratePerSecond * 1000) + 1000)
    end
    if fingerprint ~= '' then redis.call('SET', K[6], fingerprint .. ' ' .. id, 'EX', idempotencyTtl) end
  end

  if useCache == '1' then
    -- The cache entry and the in-flight leader in one call: a call from Lua costs more than a key.
    local found = redis.call('MGET', K[1], K[2])
    local hit, leader = found[1], found[2]
    if hit then
      redis.call('HSET', K[3], 'status', 'succeeded', 'cached', '1', 'coalesced', '0', 'outputs', hit,
        'startedAt', A[2], 'finishedAt', A[2], 'queueMs', '0', 'batchWaitMs', '0', 'inferMs', '0',
        'totalMs', '0', unpack(fields))
      redis.call('EXPIRE', K[3], resultTtl)
      accept()
      -- A cache hit ends the request at once: its webhook is due now (packages/webhooks).
      for i = 1, #fields, 2 do
        if fields[i] == 'callbackUrl' then redis.call('ZADD', KEYS[2], now, id) end
      end
      return { 'cached', redis.call('HGETALL', K[3]) }
    end
    if leader then
      local leaderState = redis.call('HMGET', prefix .. ':req:' .. leader, 'status', 'startedAt', 'trace')
      local status = 'queued'
      if leaderState[1] == 'running' then status = 'running' end
      redis.call('HSET', K[3], 'status', status, 'cached', '0', 'coalesced', '1', 'leader', leader, unpack(fields))
      -- Joining a running leader, it starts now: a record never starts before it was created.
      if leaderState[2] then redis.call('HSET', K[3], 'startedAt', string.format('%d', math.max(tonumber(leaderState[2]), now))) end
      redis.call('RPUSH', prefix .. ':followers:' .. leader, id)
      -- A follower waits on its leader's job but keeps its own deadline (while it is still queued).
      if status == 'queued' and deadline > 0 then redis.call('ZADD', deadlines, A[12], id) end
      accept()
      return { 'coalesced', leader, leaderState[3] or '' }
    end
  end

  -- Only a request that needs a model run of its own counts against, and is refused by, a full queue
  -- or a queue too deep for its deadline.
  if maxDepth > 0 then
    local depth = queuedDepth(K, prefix, maxDepth)
    if depth >= maxDepth then return { 'rejected', 'queue-full', QUEUE_FULL_RETRY_AFTER_SECONDS, depth } end
  end
  local waitingAllowed = tonumber(A[15])
  if waitingAllowed then
    -- Never into an empty queue (the request runs at once, whatever its deadline), nor while the
    -- queue is paused (nothing drains: the deadline sweeper ends what waits past its deadline).
    local depth = queuedDepth(K, prefix, math.max(waitingAllowed + 1, 1))
    if depth > 0 and depth > waitingAllowed and not isPaused(K, A[14] ~= '') then
      local retryAfter = math.max(1, math.ceil((depth - math.max(waitingAllowed, 0)) / tonumber(A[16])))
      return { 'rejected', 'deadline-unmeetable', retryAfter, depth }
    end
  end

  if useCache == '1' then redis.call('SET', K[2], id) end
  local entryId, stream = '', K[8]
  if A[14] ~= '' then
    redis.call('PERSIST', K[4])
    redis.call('ZADD', K[8], A[2], id)
    stream = ''
  elseif redis.call('EXISTS', K[9]) == 1 then
    -- Paused: the request waits in the held list, its payload under its own key, until resume.
    if payload == '' then redis.call('PERSIST', K[4]) else redis.call('SET', K[4], payload) end
    redis.call('RPUSH', K[10], id)
  else
    local entry = { 'i', id, 't', A[2] }
    if deadline > 0 then entry[#entry + 1] = 'd'; entry[#entry + 1] = A[12] end
    if A[13] ~= '' then entry[#entry + 1] = 'b'; entry[#entry + 1] = A[13] end
    if A[17] and A[17] ~= '' then entry[#entry + 1] = 'c'; entry[#entry + 1] = A[17] end
    if payload == '' then
      -- Written by the caller just before this script with a short TTL, in case the script never ran.
      redis.call('PERSIST', K[4])
    else
      entry[#entry + 1] = 'p'
      entry[#entry + 1] = payload
    end
    entryId = redis.call('XADD', K[8], '*', unpack(entry))
  end
  redis.call('HSET', K[3], 'status', 'queued', 'cached', '0', 'coalesced', '0', 'q', stream, 'entry', entryId,
    unpack(fields))
  redis.call('ZADD', K[5], A[2], id)
  if deadline > 0 then redis.call('ZADD', deadlines, A[12], id) end
  accept()
  return { 'queued' }
end

-- The ten keys of the n-th request of this call.
local function keysOf(n)
  local K, base = {}, 2 + (n - 1) * 10
  for j = 1, 10 do K[j] = KEYS[base + j] end
  return K
end

local request = cmsgpack.unpack(ARGV[1])
local requests = request
if ARGV[2] ~= 'many' then requests = { request } end
for n, r in ipairs(requests) do
  if r[1][5] == '' and redis.call('EXISTS', keysOf(n)[4]) == 0 then
    return redis.error_reply('NOPAYLOAD the payload written before the submit script is missing')
  end
end
if ARGV[2] ~= 'many' then return submit(keysOf(1), request[1], request[2]) end
-- infer:bulk with an Idempotency-Key: each request has an entry of its own (the key, then the key
-- and its index). One entry made by another submission refuses the whole body, before any write,
-- rather than accept some of its requests and refuse the others.
for n, r in ipairs(request) do
  local fingerprint = r[1][10]
  if fingerprint ~= '' then
    local entry = redis.call('GET', keysOf(n)[6])
    if entry and string.sub(entry, 1, string.find(entry, ' ', 1, true) - 1) ~= fingerprint then
      local refused = {}
      for j = 1, #request do refused[j] = { 'rejected', 'idempotency-key-reused' } end
      return refused
    end
  end
end
local replies = {}
for n, r in ipairs(request) do replies[n] = submit(keysOf(n), r[1], r[2]) end
return replies
