--[[
  End requests that are still queued past their deadline (timeoutMs) as `expired`, whether or not a
  worker ever takes them: workers and API processes sweep <prefix>:deadlines with it every second,
  and a read of a record past its deadline runs it for that one id.

  An expired follower leaves its leader's list. An expired leader leaves its queue and releases its
  payload and in-flight key unless followers still wait on it, in which case it still runs for them
  (start-0.lua). Entries of requests that are no longer queued (they ran, were cancelled or are
  gone) are dropped from <prefix>:deadlines.

  ARGV[1] key prefix
  ARGV[2] now (ms)
  ARGV[3] result TTL (s)
  ARGV[4] the most ids to sweep
  ARGV[5..] ids to check; none: the ids of <prefix>:deadlines whose deadline is before now

  Returns the ids it expired.
]]
local prefix, now, resultTtl, limit = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local deadlines = prefix .. ':deadlines'

local ids = {}
for i = 5, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then ids = redis.call('ZRANGEBYSCORE', deadlines, '-inf', '(' .. ARGV[2], 'LIMIT', 0, limit) end

local expired = {}
for _, id in ipairs(ids) do
  -- 1 status, 2 deadline, 3 createdAt, 4 model, 5 version, 6 callbackChannel, 7 cacheKey, 8 leader, 9 callbackUrl,
  -- 10 notify, 11 queue stream, 12 entry
  local rec = redis.call('HMGET', prefix .. ':req:' .. id, 'status', 'deadline', 'createdAt', 'model', 'version',
    'callbackChannel', 'cacheKey', 'leader', 'callbackUrl', 'notify', 'q', 'entry')
  local deadline = tonumber(rec[2]) or 0
  if rec[1] ~= 'queued' then
    redis.call('ZREM', deadlines, id)
  elseif deadline > 0 and now > deadline then
    writeExpired(prefix, id, now, resultTtl, { createdAt = rec[3], model = rec[4], version = rec[5],
      callbackChannel = rec[6], notify = rec[10], callbackUrl = rec[9] })
    redis.call('ZREM', deadlines, id)
    if rec[8] then
      local followersKey = prefix .. ':followers:' .. rec[8]
      redis.call('LREM', followersKey, 0, id)
      -- The last follower of a leader that already ended takes the leader's leftovers with it.
      local leader = redis.call('HMGET', prefix .. ':req:' .. rec[8], 'status', 'cacheKey', 'q', 'entry')
      if TERMINAL[leader[1]] and redis.call('LLEN', followersKey) == 0 then
        if leader[1] == 'cancelled' or leader[1] == 'expired' then dequeue(rec[8], leader[3], leader[4]) end
        release(prefix, rec[8], leader[2])
      end
    else
      -- Mirrors keys.ts: queued(queueName(model, version)).
      if rec[4] and rec[5] then redis.call('ZREM', prefix .. ':queued:' .. rec[4] .. '.v' .. rec[5], id) end
      if redis.call('LLEN', prefix .. ':followers:' .. id) == 0 then
        dequeue(id, rec[11], rec[12])
        release(prefix, id, rec[7])
      end
    end
    expired[#expired + 1] = id
  end
end
return expired
