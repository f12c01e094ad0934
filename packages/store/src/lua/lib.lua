--[[
  Helpers shared by the scripts that move requests: request-store.ts puts this text in front of
  each of them, so they are one copy here and local functions there. They build key names from the
  prefix: each name is one the calling script declares in KEYS or lists in its header as named at
  run time (under the prefix's hash tag, so in the declared keys' Redis Cluster slot).
]]
local TERMINAL = { succeeded = true, failed = true, cancelled = true, expired = true }
-- Mirrors keys.ts: CONSUMER_GROUP.
local CONSUMER_GROUP = 'workers'

-- A queue entry no worker may run any more: acknowledged (a worker may hold it, delivered) and gone.
local function dropEntry(stream, entry)
  if stream and stream ~= '' and entry and entry ~= '' then
    redis.call('XACK', stream, CONSUMER_GROUP, entry)
    redis.call('XDEL', stream, entry)
  end
end

-- Takes a request that waits for its queue out of it: its stream entry, or its place in the held
-- list while the queue is paused; a bullmq job is named in <prefix>:dequeued (undeclared: it carries
-- the prefix's hash tag) for the backend to remove.
local function dequeue(prefix, id, stream, entry)
  if entry and entry ~= '' then
    dropEntry(stream, entry)
  elseif stream and stream ~= '' then
    redis.call('LREM', stream .. ':held', 0, id)
  else
    -- A queue without streams (bullmq): its backend removes the job (keys.ts `dequeued`).
    redis.call('SADD', prefix .. ':dequeued', id)
  end
end

-- A terminal message goes to the request's done channel, to its callback channel, and to the notify
-- channel of the API process waiting on it, if any.
local function announceEnd(prefix, id, callbackChannel, notify, msg)
  redis.call('PUBLISH', prefix .. ':done:' .. id, msg)
  if callbackChannel and callbackChannel ~= '' then redis.call('PUBLISH', callbackChannel, msg) end
  if notify and notify ~= '' then redis.call('PUBLISH', prefix .. ':notify:' .. notify, msg) end
end

-- The payload and in-flight key of a leader that ended while no follower waits on it.
local function release(prefix, leaderId, cacheKey)
  redis.call('DEL', prefix .. ':payload:' .. leaderId)
  if cacheKey and cacheKey ~= '' and redis.call('GET', prefix .. ':inflight:' .. cacheKey) == leaderId then
    redis.call('DEL', prefix .. ':inflight:' .. cacheKey)
  end
end

-- A request a script just ended, as the script reports it to its caller (request-store.ts
-- `FinishedRequest`, one log line each): id, status, model, version, queueMs, batchWaitMs, inferMs,
-- totalMs, "1" for a coalesced request ("0" otherwise), its trace context ("" without one).
local function finishedRow(id, status, model, version, queueMs, batchWaitMs, inferMs, totalMs, coalesced, trace)
  local flag = '0'
  if coalesced then flag = '1' end
  return { id, status, model or '', version or '', tostring(queueMs), tostring(batchWaitMs), tostring(inferMs),
    tostring(totalMs), flag, trace or '' }
end

-- Ends a request that is still queued, past its deadline, as `expired`: record, channels, webhook.
-- r: { createdAt, model, version, callbackChannel, notify, callbackUrl, coalesced, trace }.
-- Returns its finishedRow.
local function writeExpired(prefix, id, now, resultTtl, r)
  local rk = prefix .. ':req:' .. id
  local createdAt = tonumber(r.createdAt) or now
  local err = { code = 'expired', message = 'the request passed its timeoutMs before it could run' }
  redis.call('HSET', rk, 'status', 'expired', 'finishedAt', tostring(now), 'totalMs', tostring(now - createdAt),
    'queueMs', tostring(now - createdAt), 'error', cjson.encode(err))
  redis.call('EXPIRE', rk, resultTtl)
  local msg = cmsgpack.pack({ id = id, status = 'expired', model = r.model, version = tonumber(r.version), cached = false,
    timings = { queueMs = now - createdAt, batchWaitMs = 0, inferMs = 0, totalMs = now - createdAt }, error = err })
  announceEnd(prefix, id, r.callbackChannel, r.notify, msg)
  -- Due now for the webhook dispatcher (packages/webhooks).
  if r.callbackUrl then redis.call('ZADD', prefix .. ':webhooks', now, id) end
  return finishedRow(id, 'expired', r.model, r.version, now - createdAt, 0, 0, now - createdAt, r.coalesced, r.trace)
end
