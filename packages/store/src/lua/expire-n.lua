--[[
  End requests that are still queued past their deadline (timeoutMs) as `expired`, whether or not a
  worker ever takes them: workers and API processes sweep <prefix>:deadlines with it every second,
  and a read of a record past its deadline runs it for that one id.

  An expired follower leaves its leader's list. An expired leader leaves its queue and releases its
  payload and in-flight key unless followers still wait on it, in which case it still runs for them
  (start-n.lua). Entries of requests that are no longer queued (they ran, were cancelled or are
  gone) are dropped from <prefix>:deadlines.

  Two phases, so that every record is declared: the sweep reads the ids of <prefix>:deadlines whose
  deadline is before now first (ZRANGEBYSCORE), then names them here; each is re-checked (status
  and deadline), so one that started or ended in between is left alone.

  KEYS[1] <prefix>:deadlines
  KEYS[2] <prefix>:webhooks
  KEYS[3..] three per id: its record, its followers list, its payload
  ARGV[1] key prefix
  ARGV[2] now (ms)
  ARGV[3] result TTL (s)
  ARGV[4..] ids to check, in the order of KEYS

  Keys named at run time, not declared: a follower's leader record and followers list (the leader
  id is read from the record), the queued set, stream or held list and in-flight key the record
  names. They carry the prefix's hash tag, so in a Redis Cluster they live in the declared keys' slot.

  Returns the finishedRow (lib.lua) of each request it expired.
]]
local prefix, now, resultTtl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local deadlines = KEYS[1]

local expired = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local k = 2 + (i - 4) * 3
  -- 1 status, 2 deadline, 3 createdAt, 4 model, 5 version, 6 callbackChannel, 7 cacheKey, 8 leader, 9 callbackUrl,
  -- 10 notify, 11 queue stream, 12 entry, 13 trace
  local rec = redis.call('HMGET', KEYS[k + 1], 'status', 'deadline', 'createdAt', 'model', 'version',
    'callbackChannel', 'cacheKey', 'leader', 'callbackUrl', 'notify', 'q', 'entry', 'trace')
  local deadline = tonumber(rec[2]) or 0
  if rec[1] ~= 'queued' then
    redis.call('ZREM', deadlines, id)
  elseif deadline > 0 and now > deadline then
    local row = writeExpired(prefix, id, now, resultTtl, { createdAt = rec[3], model = rec[4], version = rec[5],
      callbackChannel = rec[6], notify = rec[10], callbackUrl = rec[9], coalesced = rec[8] ~= false, trace = rec[13] })
    redis.call('ZREM', deadlines, id)
    if rec[8] then
      local followersKey = prefix .. ':followers:' .. rec[8]
      redis.call('LREM', followersKey, 0, id)
      -- The last follower of a leader that already ended takes the leader's leftovers with it.
      local leader = redis.call('HMGET', prefix .. ':req:' .. rec[8], 'status', 'cacheKey', 'q', 'entry')
      if TERMINAL[leader[1]] and redis.call('LLEN', followersKey) == 0 then
        if leader[1] == 'cancelled' or leader[1] == 'expired' then dequeue(prefix, rec[8], leader[3], leader[4]) end
        release(prefix, rec[8], leader[2])
      end
    else
      -- Mirrors keys.ts: queued(queueName(model, version)).
      if rec[4] and rec[5] then redis.call('ZREM', prefix .. ':queued:' .. rec[4] .. '.v' .. rec[5], id) end
      if redis.call('LLEN', KEYS[k + 2]) == 0 then
        dequeue(prefix, id, rec[11], rec[12])
        release(prefix, id, rec[7])
      end
    end
    expired[#expired + 1] = row
  end
end
return expired
