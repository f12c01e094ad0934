--[[
  Cancel a request that has not started. A follower leaves its leader's list; a leader that has no
  followers releases its payload and in-flight key (so no new request attaches to it), while one
  with followers keeps them so the job still runs for them. It leaves <prefix>:deadlines and (a
  leader) its model version's queued set, so it no longer counts against MAX_QUEUE_DEPTH.

  KEYS[1] request record
  ARGV[1] key prefix
  ARGV[2] id
  ARGV[3] now (ms)
  ARGV[4] result TTL (s)

  Returns "cancelled", "conflict" (running or finished) or "missing".
]]
local prefix, id, now, resultTtl = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
-- 1 status, 2 createdAt, 3 model, 4 version, 5 callbackChannel, 6 leader, 7 cacheKey, 8 callbackUrl
local rec = redis.call('HMGET', KEYS[1], 'status', 'createdAt', 'model', 'version', 'callbackChannel', 'leader', 'cacheKey',
  'callbackUrl')
if not rec[1] then return 'missing' end
if rec[1] ~= 'queued' then return 'conflict' end

local createdAt = tonumber(rec[2]) or now
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finishedAt', tostring(now), 'totalMs', tostring(now - createdAt),
  'queueMs', tostring(now - createdAt))
redis.call('EXPIRE', KEYS[1], resultTtl)
redis.call('ZREM', prefix .. ':unqueued', id)
redis.call('ZREM', prefix .. ':deadlines', id)

local function release(leaderId, cacheKey)
  redis.call('DEL', prefix .. ':payload:' .. leaderId)
  if cacheKey and cacheKey ~= '' and redis.call('GET', prefix .. ':inflight:' .. cacheKey) == leaderId then
    redis.call('DEL', prefix .. ':inflight:' .. cacheKey)
  end
end

if rec[6] then
  local followersKey = prefix .. ':followers:' .. rec[6]
  redis.call('LREM', followersKey, 0, id)
  -- The last follower of a leader that already ended (cancelled, expired) takes its leftovers with it.
  local leader = redis.call('HMGET', prefix .. ':req:' .. rec[6], 'status', 'cacheKey')
  if (leader[1] == 'cancelled' or leader[1] == 'expired') and redis.call('LLEN', followersKey) == 0 then
    release(rec[6], leader[2])
  end
else
  -- Mirrors keys.ts: queued(queueName(model, version)).
  redis.call('ZREM', prefix .. ':queued:' .. rec[3] .. '.v' .. rec[4], id)
  if redis.call('LLEN', prefix .. ':followers:' .. id) == 0 then release(id, rec[7]) end
end

local msg = cmsgpack.pack({ id = id, status = 'cancelled', model = rec[3], version = tonumber(rec[4]), cached = false,
  timings = { queueMs = now - createdAt, batchWaitMs = 0, inferMs = 0, totalMs = now - createdAt } })
redis.call('PUBLISH', prefix .. ':done:' .. id, msg)
if rec[5] and rec[5] ~= '' then redis.call('PUBLISH', rec[5], msg) end
-- Due now for the webhook dispatcher (packages/webhooks).
if rec[8] then redis.call('ZADD', prefix .. ':webhooks', now, id) end
return 'cancelled'
