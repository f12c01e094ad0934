--[[
  Claim a batch for inference: each request still queued moves to running (it and its followers,
  announced on their status channels). The caller reads the payloads of those to run with plain GETs
  in the same pipeline, after this script: through Lua, each payload would be copied twice more. A request that was cancelled or
  has passed its deadline is dropped, unless followers still wait on its result, in which case its
  own record stays terminal and the inference runs for them. A follower past its own deadline is
  expired here rather than run. Every claimed id leaves its model version's queued set (it no
  longer waits) and <prefix>:deadlines (a running request is not expired).

  ARGV[1] key prefix
  ARGV[2] now (ms)
  ARGV[3] result TTL (s)
  ARGV[4..] request ids

  Returns one entry per id:
  { id, "run", createdAt }
  { id, "dropped", reason }   reason: missing | finished | cancelled | expired
]]
local prefix, now, resultTtl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local terminal = { succeeded = true, failed = true, cancelled = true, expired = true }
local deadlines = prefix .. ':deadlines'
local out = {}

local function announceRunning(id)
  redis.call('HSET', prefix .. ':req:' .. id, 'status', 'running', 'startedAt', tostring(now))
  redis.call('PUBLISH', prefix .. ':status:' .. id, cmsgpack.pack({ id = id, status = 'running' }))
end

-- rec: HMGET of FIELDS below.
local FIELDS = { 'status', 'deadline', 'createdAt', 'model', 'version', 'callbackChannel', 'cacheKey', 'callbackUrl' }

local function pastDeadline(rec)
  local deadline = tonumber(rec[2]) or 0
  return rec[1] == 'queued' and deadline > 0 and now > deadline
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
  -- Due now for the webhook dispatcher (packages/webhooks).
  if rec[8] then redis.call('ZADD', prefix .. ':webhooks', now, id) end
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
  local rec = redis.call('HMGET', rk, unpack(FIELDS))
  local status = rec[1]
  local followersKey = prefix .. ':followers:' .. id
  if not status then
    out[#out + 1] = { id, 'dropped', 'missing' }
  else
    -- Mirrors keys.ts: queued(queueName(model, version)).
    if rec[4] and rec[5] then redis.call('ZREM', prefix .. ':queued:' .. rec[4] .. '.v' .. rec[5], id) end
    if (tonumber(rec[2]) or 0) > 0 then redis.call('ZREM', deadlines, id) end
    if pastDeadline(rec) then
      expire(id, rec)
      status = 'expired'
    end
    -- Followers still queued past their own deadline end now; the others wait on this run.
    local waiting = {}
    for _, f in ipairs(redis.call('LRANGE', followersKey, 0, -1)) do
      local frec = redis.call('HMGET', prefix .. ':req:' .. f, unpack(FIELDS))
      if pastDeadline(frec) then
        expire(f, frec)
        redis.call('ZREM', deadlines, f)
        redis.call('LREM', followersKey, 0, f)
      else
        waiting[#waiting + 1] = { f, frec[1], frec[2] }
      end
    end
    if terminal[status] and (status == 'succeeded' or status == 'failed' or #waiting == 0) then
      if status == 'cancelled' or status == 'expired' then release(id, rec[7]) end
      local reason = status
      if status == 'succeeded' or status == 'failed' then reason = 'finished' end
      out[#out + 1] = { id, 'dropped', reason }
    else
      if not terminal[status] then announceRunning(id) end
      for _, f in ipairs(waiting) do
        if f[2] == 'queued' then
          announceRunning(f[1])
          if (tonumber(f[3]) or 0) > 0 then redis.call('ZREM', deadlines, f[1]) end
        end
      end
      out[#out + 1] = { id, 'run', rec[3] }
    end
  end
end
return out
