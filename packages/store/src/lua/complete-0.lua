--[[
  Record the end of one request: its terminal record (with the result TTL), the cache entry, the
  release of its in-flight key and payload, the same result for every follower, and the completion
  message on each one's done channel and callback channel (and a webhook due for each one that has a
  callback URL). Safe to run twice for one request (a job
  re-run after a worker crash): a record that is already terminal is left as it is.

  ARGV[1]  key prefix
  ARGV[2]  id
  ARGV[3]  status: succeeded | failed
  ARGV[4]  now (ms)
  ARGV[5]  result TTL (s)
  ARGV[6]  outputs (MessagePack bytes) or ""
  ARGV[7]  error JSON or ""
  ARGV[8]  queueMs   ARGV[9] batchWaitMs   ARGV[10] inferMs   ARGV[11] batchSize
  ARGV[12] completion message (MessagePack, the request id as its first value)
  ARGV[13] byte offset of the id inside the message (0-based)

  Returns 1 when the record was written, 0 when it was already terminal or is gone.
]]
local prefix, id, status, now, resultTtl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local outputs, errorJson = ARGV[6], ARGV[7]
local queueMs, batchWaitMs, inferMs, batchSize = ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local message, idOffset = ARGV[12], tonumber(ARGV[13])
local terminal = { succeeded = true, failed = true, cancelled = true, expired = true }

local function finish(rid, msg)
  local rk = prefix .. ':req:' .. rid
  local rec = redis.call('HMGET', rk, 'status', 'createdAt', 'callbackChannel', 'callbackUrl')
  if not rec[1] or terminal[rec[1]] then return 0 end
  local createdAt = tonumber(rec[2]) or now
  redis.call('HSET', rk, 'status', status, 'finishedAt', tostring(now), 'queueMs', queueMs, 'batchWaitMs', batchWaitMs,
    'inferMs', inferMs, 'totalMs', tostring(now - createdAt), 'batchSize', batchSize)
  if outputs ~= '' then redis.call('HSET', rk, 'outputs', outputs) end
  if errorJson ~= '' then redis.call('HSET', rk, 'error', errorJson) end
  redis.call('EXPIRE', rk, resultTtl)
  redis.call('PUBLISH', prefix .. ':done:' .. rid, msg)
  if rec[3] and rec[3] ~= '' then redis.call('PUBLISH', rec[3], msg) end
  -- Due now for the webhook dispatcher (packages/webhooks), which POSTs the record to callback.url.
  if rec[4] then redis.call('ZADD', prefix .. ':webhooks', now, rid) end
  return 1
end

local written = finish(id, message)

local leaderKey = prefix .. ':req:' .. id
local meta = redis.call('HMGET', leaderKey, 'cacheKey', 'cacheTtl')
local cacheKey, cacheTtl = meta[1], tonumber(meta[2]) or 0
redis.call('DEL', prefix .. ':payload:' .. id)
if cacheKey and cacheKey ~= '' then
  if status == 'succeeded' and cacheTtl > 0 then
    redis.call('SET', prefix .. ':cache:' .. cacheKey, outputs, 'EX', cacheTtl)
  end
  if redis.call('GET', prefix .. ':inflight:' .. cacheKey) == id then
    redis.call('DEL', prefix .. ':inflight:' .. cacheKey)
  end
end

local followersKey = prefix .. ':followers:' .. id
local followers = redis.call('LRANGE', followersKey, 0, -1)
redis.call('DEL', followersKey)
local before, after = string.sub(message, 1, idOffset), string.sub(message, idOffset + #id + 1)
for _, f in ipairs(followers) do
  finish(f, before .. f .. after)
end
return written
