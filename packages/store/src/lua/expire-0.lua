--[[
  End requests that are still queued past their deadline (timeoutMs) as `expired`, whether or not a
  worker ever picks their job up: workers and API processes sweep <prefix>:deadlines with it every
  second, and a read of a record past its deadline runs it for that one id.

  An expired follower leaves its leader's list. An expired leader releases its payload and in-flight
  key unless followers still wait on it, in which case its job runs for them (claim-0.lua). Entries
  of requests that are no longer queued (they ran, were cancelled or are gone) are dropped from
  <prefix>:deadlines.

  ARGV[1] key prefix
  ARGV[2] now (ms)
  ARGV[3] result TTL (s)
  ARGV[4] the most ids to sweep
  ARGV[5..] ids to check; none: the ids of <prefix>:deadlines whose deadline is before now

  Returns the ids it expired.
]]
local prefix, now, resultTtl, limit = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local deadlines = prefix .. ':deadlines'
local terminal = { succeeded = true, failed = true, cancelled = true, expired = true }

local ids = {}
for i = 5, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then ids = redis.call('ZRANGEBYSCORE', deadlines, '-inf', '(' .. ARGV[2], 'LIMIT', 0, limit) end

-- The payload and in-flight key of a leader that ended while no follower waits on it.
local function release(leaderId, cacheKey)
  redis.call('DEL', prefix .. ':payload:' .. leaderId)
  if cacheKey and cacheKey ~= '' and redis.call('GET', prefix .. ':inflight:' .. cacheKey) == leaderId then
    redis.call('DEL', prefix .. ':inflight:' .. cacheKey)
  end
end

local expired = {}
for _, id in ipairs(ids) do
  local rk = prefix .. ':req:' .. id
  -- 1 status, 2 deadline, 3 createdAt, 4 model, 5 version, 6 callbackChannel, 7 cacheKey, 8 leader, 9 callbackUrl
  local rec = redis.call('HMGET', rk, 'status', 'deadline', 'createdAt', 'model', 'version', 'callbackChannel',
    'cacheKey', 'leader', 'callbackUrl')
  local deadline = tonumber(rec[2]) or 0
  if rec[1] ~= 'queued' then
    redis.call('ZREM', deadlines, id)
  elseif deadline > 0 and now > deadline then
    local createdAt = tonumber(rec[3]) or now
    local err = { code = 'expired', message = 'the request passed its timeoutMs before it could run' }
    redis.call('HSET', rk, 'status', 'expired', 'finishedAt', ARGV[2], 'totalMs', tostring(now - createdAt),
      'queueMs', tostring(now - createdAt), 'error', cjson.encode(err))
    redis.call('EXPIRE', rk, resultTtl)
    redis.call('ZREM', deadlines, id)
    if rec[8] then
      local followersKey = prefix .. ':followers:' .. rec[8]
      redis.call('LREM', followersKey, 0, id)
      -- The last follower of a leader that already ended takes the leader's leftovers with it.
      local leader = redis.call('HMGET', prefix .. ':req:' .. rec[8], 'status', 'cacheKey')
      if terminal[leader[1]] and redis.call('LLEN', followersKey) == 0 then release(rec[8], leader[2]) end
    else
      -- Mirrors keys.ts: queued(queueName(model, version)).
      if rec[4] and rec[5] then redis.call('ZREM', prefix .. ':queued:' .. rec[4] .. '.v' .. rec[5], id) end
      redis.call('ZREM', prefix .. ':unqueued', id)
      if redis.call('LLEN', prefix .. ':followers:' .. id) == 0 then release(id, rec[7]) end
    end
    local msg = cmsgpack.pack({ id = id, status = 'expired', model = rec[4], version = tonumber(rec[5]), cached = false,
      timings = { queueMs = now - createdAt, batchWaitMs = 0, inferMs = 0, totalMs = now - createdAt }, error = err })
    redis.call('PUBLISH', prefix .. ':done:' .. id, msg)
    if rec[6] and rec[6] ~= '' then redis.call('PUBLISH', rec[6], msg) end
    -- Due now for the webhook dispatcher (packages/webhooks).
    if rec[9] then redis.call('ZADD', prefix .. ':webhooks', now, id) end
    expired[#expired + 1] = id
  end
end
return expired
