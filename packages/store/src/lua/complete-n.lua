--[[
  Record the end of a batch of requests, one script call for the whole batch. For each request: its
  terminal record (with the result TTL), the cache entry, the release of its in-flight key and
  payload, the same result for every follower, the completion message on each one's done channel,
  callback channel and waiting API's notify channel (and a webhook due for each one with a callback
  URL), and its queue entry acknowledged and deleted. Safe to run twice for one request (a batch
  re-run after a worker crash): a record that is already terminal is left as it is.

  A request may still be `queued` here: a worker runs a model fast enough for its main thread
  without announcing the start first (nobody could see `running` for so short a time). Then this
  script does what starting does: the request leaves its model version's queued set and the
  deadlines, and gets its `startedAt`; one whose deadline had passed by then ends expired instead.

  KEYS[1] <prefix>:deadlines
  KEYS[2] <prefix>:webhooks
  KEYS[3..] five per row of ARGV[4], in order: its record, its stream (the one its entry is in, or
            its model version's normal stream when the caller holds no entry), its followers list,
            its payload, its model version's queued set
  ARGV[1] key prefix
  ARGV[2] now (ms)
  ARGV[3] result TTL (s)
  ARGV[4] MessagePack array of one row per request (one argument where there would be a dozen per
          request: a client pays for each argument it sends), each row 14 strings:
    id, stream, entry id ("": the one its record names), status (succeeded | failed), outputs (MessagePack bytes or ""),
    error JSON or "", queueMs, batchWaitMs, inferMs, batchSize, startedAt (ms, "" when it never ran),
    completion message (MessagePack, the request id as its first value), byte offset of the id in it,
    a pipeline request's step timings (JSON, `timings.steps`) or ""

  Keys named at run time, not declared: the cache and in-flight keys (the cache key is read from the
  record), the followers' records (ids read from the followers list) and, for a row without an
  entry, the stream its record names. They carry the prefix's hash tag, so in a Redis Cluster they
  live in the declared keys' slot.

  Returns, for each row of ARGV[4] in order, the finishedRow (lib.lua) of every record it ended for
  that row: the request's own first unless it was already terminal, then each follower's. A record
  already terminal is not reported: whoever ended it did.
]]
local prefix, now, resultTtl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local ended = {}

-- One HMGET reads everything either the record's end or the leader's own bookkeeping needs.
local FIELDS = { 'status', 'createdAt', 'callbackChannel', 'callbackUrl', 'notify', 'model', 'version', 'deadline',
  'cacheKey', 'cacheTtl', 'q', 'entry', 'trace' }

-- The phases of a request created at `createdAt` and ending now, in ms: the run's phases (queue up to
-- its start, batch wait the end of that, inference from the start) cut to the request's own life, so
-- none exceeds its total. A leader's are the worker's as measured; a follower that arrived after its
-- leader does not count the time before it arrived (joined while running: no queue or batch wait, and
-- only the inference after it). Clamps a skewed clock between API and worker hosts too.
local function phasesOf(createdAt, timings, startedAt)
  local total = math.max(0, now - createdAt)
  local infer = tonumber(timings[3]) or 0
  local start = tonumber(startedAt) or (now - infer)
  local queue = math.min(total, math.max(0, start - createdAt))
  local batchWait = math.min(queue, tonumber(timings[2]) or 0)
  local inferred = math.min(total, math.max(0, math.min(start + infer, now) - math.max(start, createdAt)))
  return tostring(queue), tostring(batchWait), tostring(inferred), tostring(total)
end

-- Ends request `rid` (its fields `rec`, read with FIELDS) with the batch's result; returns its
-- finishedRow, or nil when it had already ended (or is gone).
local function finish(rid, rec, status, outputs, errorJson, timings, startedAt, msg, steps, coalesced)
  if not rec[1] or TERMINAL[rec[1]] then return nil end
  local rk = prefix .. ':req:' .. rid
  local deadline = tonumber(rec[8]) or 0
  if rec[1] == 'queued' and deadline > 0 and (tonumber(startedAt) or now) > deadline then
    -- Past its own deadline when the batch started (a follower the start was not announced to): it
    -- ends expired, as starting it would have ended it.
    local row = writeExpired(prefix, rid, now, resultTtl, { createdAt = rec[2], model = rec[6], version = rec[7],
      callbackChannel = rec[3], notify = rec[5], callbackUrl = rec[4], coalesced = coalesced, trace = rec[13] })
    redis.call('ZREM', KEYS[1], rid)
    return row
  end
  local createdAt = tonumber(rec[2]) or now
  local queueMs, batchWaitMs, inferMs, totalMs = phasesOf(createdAt, timings, startedAt)
  -- One HSET for every field written: each call from Lua costs Redis more than the fields it sets.
  local fields = { 'status', status, 'finishedAt', tostring(now), 'queueMs', queueMs, 'batchWaitMs', batchWaitMs,
    'inferMs', inferMs, 'totalMs', totalMs, 'batchSize', timings[4] }
  if rec[1] == 'queued' then
    -- Mirrors keys.ts: queued(queueName(model, version)).
    if rec[6] and rec[7] then redis.call('ZREM', prefix .. ':queued:' .. rec[6] .. '.v' .. rec[7], rid) end
    if deadline > 0 then redis.call('ZREM', KEYS[1], rid) end
    -- A follower that arrived after the run started starts when it arrived.
    if startedAt ~= '' then
      fields[#fields + 1] = 'startedAt'
      fields[#fields + 1] = string.format('%d', math.max(tonumber(startedAt), createdAt))
    end
  end
  if outputs ~= '' then fields[#fields + 1] = 'outputs'; fields[#fields + 1] = outputs end
  if errorJson ~= '' then fields[#fields + 1] = 'error'; fields[#fields + 1] = errorJson end
  if steps ~= '' then fields[#fields + 1] = 'steps'; fields[#fields + 1] = steps end
  redis.call('HSET', rk, unpack(fields))
  redis.call('EXPIRE', rk, resultTtl)
  announceEnd(prefix, rid, rec[3], rec[5], msg)
  -- Due now for the webhook dispatcher (packages/webhooks), which POSTs the record to callback.url.
  if rec[4] then redis.call('ZADD', KEYS[2], now, rid) end
  return finishedRow(rid, status, rec[6], rec[7], queueMs, batchWaitMs, inferMs, totalMs, coalesced, rec[13])
end

local function fieldsOf(rid)
  return redis.call('HMGET', prefix .. ':req:' .. rid, unpack(FIELDS))
end

for n, row in ipairs(cmsgpack.unpack(ARGV[4])) do
  local k = 2 + (n - 1) * 5
  local id, stream, entry, status, outputs, errorJson = row[1], row[2], row[3], row[4], row[5], row[6]
  local timings = { row[7], row[8], row[9], row[10] }
  local startedAt, message, idOffset, steps = row[11], row[12], tonumber(row[13]), row[14] or ''
  local rec = fieldsOf(id)
  local rowEnded = {}
  ended[n] = rowEnded
  rowEnded[#rowEnded + 1] = finish(id, rec, status, outputs, errorJson, timings, startedAt, message, steps, false)

  local cacheKey, cacheTtl = rec[9], tonumber(rec[10]) or 0
  redis.call('DEL', KEYS[k + 4])
  if cacheKey and cacheKey ~= '' then
    if status == 'succeeded' and cacheTtl > 0 then
      redis.call('SET', prefix .. ':cache:' .. cacheKey, outputs, 'EX', cacheTtl)
    end
    if redis.call('GET', prefix .. ':inflight:' .. cacheKey) == id then
      redis.call('DEL', prefix .. ':inflight:' .. cacheKey)
    end
  end

  local followersKey = KEYS[k + 3]
  local followers = redis.call('LRANGE', followersKey, 0, -1)
  if #followers > 0 then
    redis.call('DEL', followersKey)
    local before, after = string.sub(message, 1, idOffset), string.sub(message, idOffset + #id + 1)
    for _, f in ipairs(followers) do
      rowEnded[#rowEnded + 1] =
        finish(f, fieldsOf(f), status, outputs, errorJson, timings, startedAt, before .. f .. after, steps, true)
    end
  end
  -- The entry the worker names, else the one the record names (a caller that did not take it itself).
  if entry == '' then stream, entry = rec[11], rec[12] else stream = KEYS[k + 2] end
  dropEntry(stream, entry)
end
return ended
