--[[
  Cancel a request that has not started, or (with ARGV[5]) a running one that no follower waits on:
  a pipeline's, whose worker sees it cancelled and stops its steps (docs/pipelines.md). A running
  request only has its record ended and its payload and in-flight key released; its worker still
  holds its queue entry and acknowledges it when it lets the request go. A follower leaves its leader's list; a leader leaves its
  queue (its stream entry, or the held list while the queue is paused) unless followers wait on it,
  and releases its payload and in-flight key (so no new request attaches to it), while one with
  followers keeps them so it still runs for them. It leaves <prefix>:deadlines and (a leader) its
  model version's queued set, so it no longer counts against MAX_QUEUE_DEPTH.

  KEYS[1] request record
  KEYS[2] <prefix>:deadlines
  KEYS[3] <prefix>:webhooks
  KEYS[4] its followers list
  KEYS[5] its payload
  ARGV[1] key prefix
  ARGV[2] id
  ARGV[3] now (ms)
  ARGV[4] result TTL (s)
  ARGV[5] "1": a running request may be cancelled too; "" or absent: only a queued one

  Keys named at run time, not declared: the leader's record and followers list of a follower (the
  leader id is read from the record), the queued set, stream or held list and in-flight key the
  record names. They carry the prefix's hash tag, so in a Redis Cluster they live in the declared
  keys' slot.

  Returns { "cancelled", finishedRow (lib.lua) }, "conflict" (running or finished) or "missing".
]]
local prefix, id, now, resultTtl = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
-- 1 status, 2 createdAt, 3 model, 4 version, 5 callbackChannel, 6 leader, 7 cacheKey, 8 callbackUrl, 9 notify,
-- 10 queue stream, 11 entry, 12 trace, 13 startedAt
local rec = redis.call('HMGET', KEYS[1], 'status', 'createdAt', 'model', 'version', 'callbackChannel', 'leader', 'cacheKey',
  'callbackUrl', 'notify', 'q', 'entry', 'trace', 'startedAt')
if not rec[1] then return 'missing' end
local running = rec[1] == 'running' and ARGV[5] == '1' and redis.call('LLEN', KEYS[4]) == 0
if rec[1] ~= 'queued' and not running then return 'conflict' end

local createdAt = tonumber(rec[2]) or now
if running then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finishedAt', tostring(now), 'totalMs', tostring(now - createdAt))
else
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finishedAt', tostring(now), 'totalMs', tostring(now - createdAt),
    'queueMs', tostring(now - createdAt))
end
redis.call('EXPIRE', KEYS[1], resultTtl)
redis.call('ZREM', KEYS[2], id)

if running then
  release(prefix, id, rec[7])
elseif rec[6] then
  local followersKey = prefix .. ':followers:' .. rec[6]
  redis.call('LREM', followersKey, 0, id)
  -- The last follower of a leader that already ended (cancelled, expired) takes its leftovers with it.
  local leader = redis.call('HMGET', prefix .. ':req:' .. rec[6], 'status', 'cacheKey', 'q', 'entry')
  if (leader[1] == 'cancelled' or leader[1] == 'expired') and redis.call('LLEN', followersKey) == 0 then
    dequeue(prefix, rec[6], leader[3], leader[4])
    release(prefix, rec[6], leader[2])
  end
else
  -- Mirrors keys.ts: queued(queueName(model, version)).
  redis.call('ZREM', prefix .. ':queued:' .. rec[3] .. '.v' .. rec[4], id)
  if redis.call('LLEN', KEYS[4]) == 0 then
    dequeue(prefix, id, rec[10], rec[11])
    release(prefix, id, rec[7])
  end
end

local msg = cmsgpack.pack({ id = id, status = 'cancelled', model = rec[3], version = tonumber(rec[4]), cached = false,
  timings = { queueMs = now - createdAt, batchWaitMs = 0, inferMs = 0, totalMs = now - createdAt } })
announceEnd(prefix, id, rec[5], rec[9], msg)
-- Due now for the webhook dispatcher (packages/webhooks).
if rec[8] then redis.call('ZADD', KEYS[3], now, id) end
-- A running request waited in its queue until it started; a queued one all its life.
local queueMs = now - createdAt
if running then queueMs = math.max(0, math.min(queueMs, (tonumber(rec[13]) or now) - createdAt)) end
return { 'cancelled', finishedRow(id, 'cancelled', rec[3], rec[4], queueMs, 0, 0, now - createdAt, rec[6] ~= false, rec[12]) }
