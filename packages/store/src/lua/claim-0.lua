--[[
  Claim a batch for inference: each request still queued moves to running (it and its followers,
  announced on their status channels) and its payload is returned. A request that was cancelled or
  has passed its deadline is dropped, unless followers still wait on its result, in which case its
  own record stays terminal and the inference runs for them.

  ARGV[1] key prefix
  ARGV[2] now (ms)
  ARGV[3] result TTL (s)
  ARGV[4..] request ids

  Returns one entry per id:
  { id, "run", payload, createdAt }
  { id, "dropped", reason }   reason: missing | finished | cancelled | expired
]]
local prefix, now, resultTtl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local terminal = { succeeded = true, failed = true, cancelled = true, expired = true }
local out = {}

local function announceRunning(id)
  redis.call('HSET', prefix .. ':req:' .. id, 'status', 'running', 'startedAt', tostring(now))
  redis.call('PUBLISH', prefix .. ':status:' .. id, cmsgpack.pack({ id = id, status = 'running' }))
end

local function expire(id, rec)
  local rk = prefix .. ':req:' .. id
  local createdAt = tonumber(rec[3]) or now
  local err = { code = 'expired', message = 'the request passed its timeoutMs before it could run' }
  redis.call('HSET', rk, 'status', 'expired', 'finishedAt', tostring(now), 'totalMs', tostring(now - createdAt),
    'queueMs', tostring(now - createdAt), 'error', cjson.encode(err))
  redis.call('EXPIRE', rk, resultTtl)
  local msg = cmsgpack.pack({ id = id, status = 'expired', model = rec[4], version = tonumber(rec[5]), cached = false,
    timings = { queueMs = now - createdAt, batchWaitMs = 0, inferMs = 0, totalMs = now - createdAt }, error = err })
  redis.call('PUBLISH', prefix .. ':done:' .. id, msg)
  if rec[6] and rec[6] ~= '' then redis.call('PUBLISH', rec[6], msg) end
end

local function release(id, cacheKey)
  redis.call('DEL', prefix .. ':payload:' .. id)
  if cacheKey and cacheKey ~= '' and redis.call('GET', prefix .. ':inflight:' .. cacheKey) == id then
    redis.call('DEL', prefix .. ':inflight:' .. cacheKey)
  end
end

for i = 4, #ARGV do
  local id = ARGV[i]
  local rk = prefix .. ':req:' .. id
  redis.call('ZREM', prefix .. ':unqueued', id)
  -- 1 status, 2 deadline, 3 createdAt, 4 model, 5 version, 6 callbackChannel, 7 cacheKey
  local rec = redis.call('HMGET', rk, 'status', 'deadline', 'createdAt', 'model', 'version', 'callbackChannel', 'cacheKey')
  local status = rec[1]
  local followersKey = prefix .. ':followers:' .. id
  if not status then
    out[#out + 1] = { id, 'dropped', 'missing' }
  else
    local deadline = tonumber(rec[2]) or 0
    if status == 'queued' and deadline > 0 and now > deadline then
      expire(id, rec)
      status = 'expired'
    end
    local followers = redis.call('LRANGE', followersKey, 0, -1)
    if terminal[status] and (status == 'succeeded' or status == 'failed' or #followers == 0) then
      if status == 'cancelled' or status == 'expired' then release(id, rec[7]) end
      local reason = status
      if status == 'succeeded' or status == 'failed' then reason = 'finished' end
      out[#out + 1] = { id, 'dropped', reason }
    else
      if not terminal[status] then announceRunning(id) end
      for _, f in ipairs(followers) do
        if redis.call('HGET', prefix .. ':req:' .. f, 'status') == 'queued' then announceRunning(f) end
      end
      local payload = redis.call('GET', prefix .. ':payload:' .. id)
      if payload then
        out[#out + 1] = { id, 'run', payload, rec[3] }
      else
        out[#out + 1] = { id, 'dropped', 'missing' }
      end
    end
  end
end
return out
