--[[
  Enqueue again the requests whose retry is due (retry-0.lua): a new entry in their stream, carrying
  their failed runs so far (`a`); the payload stays under its key, where the worker reads it.
  A request that ended meanwhile is only forgotten. Every worker calls it for its queues: when a
  retry of its own falls due and, as a backstop, every second.

  ARGV[1] key prefix
  ARGV[2] now (ms)
  ARGV[3] the most requests per stream
  ARGV[4..] streams

  Returns how many requests it enqueued.
]]
local prefix, now, limit = ARGV[1], ARGV[2], ARGV[3]
local enqueued = 0
for i = 4, #ARGV do
  local stream = ARGV[i]
  local delayed = stream .. ':delayed'
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, limit)) do
    redis.call('ZREM', delayed, id)
    local rk = prefix .. ':req:' .. id
    local rec = redis.call('HMGET', rk, 'status', 'createdAt', 'attempts', 'retry', 'batch')
    if rec[1] == 'running' and rec[4] == '1' then
      local fields = { 'i', id, 't', rec[2] or now, 'a', rec[3] or '0' }
      if rec[5] then fields[#fields + 1] = 'b'; fields[#fields + 1] = rec[5] end
      local entry = redis.call('XADD', stream, '*', unpack(fields))
      redis.call('HSET', rk, 'entry', entry)
      enqueued = enqueued + 1
    end
  end
end
return enqueued
