--[[
  Cancel a request that has not started. A follower leaves its leader's list; a leader that has no
  followers releases its payload and in-flight key (so no new request attaches to it), while one
  with followers keeps them so the job still runs for them.

  KEYS[1] request record
  ARGV[1] key prefix
  ARGV[2] id
  ARGV[3] now (ms)
  ARGV[4] result TTL (s)

  Returns "cancelled", "conflict" (running or finished) or "missing".
]]
local prefix, id, now, resultTtl = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
-- 1 status, 2 createdAt, 3 model, 4 version, 5 callbackChannel, 6 leader, 7 cacheKey
local rec = redis.call('HMGET', KEYS[1], 'status', 'createdAt', 'model', 'version', 'callbackChannel', 'leader', 'cacheKey')
if not rec[1] then return 'missing' end
if rec[1] ~= 'queued' then return 'conflict' end

local createdAt = tonumber(rec[2]) or now
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finishedAt', tostring(now), 'totalMs', tostring(now - createdAt),
  'queueMs', tostring(now - createdAt))
redis.call('EXPIRE', KEYS[1], resultTtl)
redis.call('ZREM', prefix .. ':unqueued', id)

if rec[6] then
  redis.call('LREM', prefix .. ':followers:' .. rec[6], 0, id)
elseif redis.call('LLEN', prefix .. ':followers:' .. id) == 0 then
  redis.call('DEL', prefix .. ':payload:' .. id)
  if rec[7] and rec[7] ~= '' and redis.call('GET', prefix .. ':inflight:' .. rec[7]) == id then
    redis.call('DEL', prefix .. ':inflight:' .. rec[7])
  end
end

local msg = cmsgpack.pack({ id = id, status = 'cancelled', model = rec[3], version = tonumber(rec[4]), cached = false,
  timings = { queueMs = now - createdAt, batchWaitMs = 0, inferMs = 0, totalMs = now - createdAt } })
redis.call('PUBLISH', prefix .. ':done:' .. id, msg)
if rec[5] and rec[5] ~= '' then redis.call('PUBLISH', rec[5], msg) end
return 'cancelled'
