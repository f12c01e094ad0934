--[[
  Start a batch a worker has taken from its queue: each request still queued becomes running (it
  and its followers, announced on their status channels); the rest is dropped and its entry
  acknowledged and deleted. A cancelled or expired leader whose followers still wait runs for
  them; a follower past its own deadline is expired here rather than started. Every started id
  leaves its model version's queued set and <prefix>:deadlines (a running request is not expired).

  A request found `running` was started before by a worker that stopped before finishing it (its
  entry came back through the reclaim of an expired lease), unless it waits for a retry after a
  failed run (its `retry` mark): past `maxStalls` such restarts it is answered `lost`, for the
  worker to end it failed instead of running, once more, an input that may be what kills workers.

  KEYS[1] <prefix>:deadlines
  KEYS[2] <prefix>:webhooks
  KEYS[3..] five per request: its record, its stream, its followers list, its payload, its model
            version's queued set
  ARGV[1] key prefix
  ARGV[2] now (ms)
  ARGV[3] result TTL (s)
  ARGV[4] most restarts of a stalled request (maxStalls)
  ARGV[5..] pairs: request id, its entry id ("" when it was not taken from a stream)

  Keys named at run time, not declared: the followers' records (ids read from the followers list)
  and the in-flight key of a leader released here (its cache key read from the record). They carry
  the prefix's hash tag, so in a Redis Cluster they live in the declared keys' slot.

  Returns { rows, ended }: rows has one entry per id,
  { id, "run", createdAt }
  { id, "lost" }              restarted more than maxStalls times: end it failed (worker_lost)
  { id, "dropped", reason }   reason: missing | finished (it ended earlier: succeeded, failed, or
                              expired by a sweep or a read) | cancelled | expired (by this start)
  and ended one finishedRow (lib.lua) per request this start ended (expired), followers included.
]]
local prefix, now, resultTtl, maxStalls = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local deadlines = KEYS[1]
local out = {}
local ended = {}

local function announceRunning(id)
  redis.call('HSET', prefix .. ':req:' .. id, 'status', 'running', 'startedAt', tostring(now))
  redis.call('PUBLISH', prefix .. ':status:' .. id, cmsgpack.pack({ id = id, status = 'running' }))
end

-- rec: HMGET of FIELDS below.
local FIELDS = { 'status', 'deadline', 'createdAt', 'model', 'version', 'callbackChannel', 'cacheKey', 'callbackUrl',
  'notify', 'retry', 'trace' }

local function pastDeadline(rec)
  local deadline = tonumber(rec[2]) or 0
  return rec[1] == 'queued' and deadline > 0 and now > deadline
end

local function expire(id, rec, coalesced)
  ended[#ended + 1] = writeExpired(prefix, id, now, resultTtl, { createdAt = rec[3], model = rec[4], version = rec[5],
    callbackChannel = rec[6], notify = rec[9], callbackUrl = rec[8], coalesced = coalesced, trace = rec[11] })
end

for i = 5, #ARGV, 2 do
  local id, entry = ARGV[i], ARGV[i + 1]
  local k = 2 + (i - 5) / 2 * 5
  local rk, stream, followersKey, queuedKey = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 5]
  local rec = redis.call('HMGET', rk, unpack(FIELDS))
  local status = rec[1]
  if not status then
    dropEntry(stream, entry)
    out[#out + 1] = { id, 'dropped', 'missing' }
  else
    redis.call('ZREM', queuedKey, id)
    if (tonumber(rec[2]) or 0) > 0 then redis.call('ZREM', deadlines, id) end
    local expiredNow = pastDeadline(rec)
    if expiredNow then
      expire(id, rec, false)
      status = 'expired'
    end
    -- Followers still queued past their own deadline end now; the others wait on this run.
    local waiting = {}
    for _, f in ipairs(redis.call('LRANGE', followersKey, 0, -1)) do
      local frec = redis.call('HMGET', prefix .. ':req:' .. f, unpack(FIELDS))
      if pastDeadline(frec) then
        expire(f, frec, true)
        redis.call('ZREM', deadlines, f)
        redis.call('LREM', followersKey, 0, f)
      else
        waiting[#waiting + 1] = { f, frec[1], frec[2] }
      end
    end
    if TERMINAL[status] and (status == 'succeeded' or status == 'failed' or #waiting == 0) then
      if status == 'cancelled' or status == 'expired' then release(prefix, id, rec[7]) end
      dropEntry(stream, entry)
      -- `expired` only when this start expired it: one a sweep or a read ended earlier is `finished`,
      -- so the worker's count of expired requests is the ones it found expired (on either backend).
      local reason = 'finished'
      if status == 'cancelled' then reason = 'cancelled' elseif expiredNow then reason = 'expired' end
      out[#out + 1] = { id, 'dropped', reason }
    elseif status == 'running' and rec[10] ~= '1' and redis.call('HINCRBY', rk, 'stalls', 1) > maxStalls then
      out[#out + 1] = { id, 'lost' }
    else
      if rec[10] == '1' then redis.call('HDEL', rk, 'retry') end
      if status == 'queued' then announceRunning(id) end
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
return { out, ended }
