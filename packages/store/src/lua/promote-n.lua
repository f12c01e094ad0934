--[[
  Enqueue again the requests whose retry is due (retry-n.lua): a new entry in their stream, carrying
  their failed runs so far (`a`); the payload stays under its key, where the worker reads it.
  A request that ended meanwhile is only forgotten. Every worker calls it for its queues: when a
  retry of its own falls due and, as a backstop, every second.

  Two phases, so that every key is declared: the caller reads the due ids of each delayed set first
  (ZRANGEBYSCORE), then names them here; an id is promoted only if it is still in its delayed set
  and due (another worker may have promoted it in between).

  KEYS    three per id: its record, its stream, the stream's delayed set
  ARGV[1] now (ms)
  ARGV[2..] ids, in the order of KEYS

  Returns how many requests it enqueued.
]]
local now = tonumber(ARGV[1])
local enqueued = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local k = (i - 2) * 3
  local rk, stream, delayed = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local due = tonumber(redis.call('ZSCORE', delayed, id))
  if due and due <= now then
    redis.call('ZREM', delayed, id)
    local rec = redis.call('HMGET', rk, 'status', 'createdAt', 'attempts', 'retry', 'batch', 'trace')
    if rec[1] == 'running' and rec[4] == '1' then
      local fields = { 'i', id, 't', rec[2] or ARGV[1], 'a', rec[3] or '0' }
      if rec[5] then fields[#fields + 1] = 'b'; fields[#fields + 1] = rec[5] end
      if rec[6] then fields[#fields + 1] = 'c'; fields[#fields + 1] = rec[6] end
      local entry = redis.call('XADD', stream, '*', unpack(fields))
      redis.call('HSET', rk, 'entry', entry)
      enqueued = enqueued + 1
    end
  end
end
return enqueued
