--[[
  Resume a paused queue: requests held while it was paused (submit-0.lua) get their stream entries,
  in the order they arrived; their payloads stay under their keys, where the worker reads them.
  Requests that ended meanwhile (cancelled, expired) are only forgotten.

  KEYS[1] paused flag
  ARGV[1] key prefix
  ARGV[2..] the queue's streams

  Returns how many requests it enqueued.
]]
local prefix = ARGV[1]
redis.call('DEL', KEYS[1])
local enqueued = 0
for i = 2, #ARGV do
  local stream = ARGV[i]
  local held = stream .. ':held'
  local ids = redis.call('LRANGE', held, 0, -1)
  redis.call('DEL', held)
  for _, id in ipairs(ids) do
    local rk = prefix .. ':req:' .. id
    local rec = redis.call('HMGET', rk, 'status', 'createdAt', 'deadline', 'batch')
    if rec[1] == 'queued' then
      local entry = { 'i', id, 't', rec[2] }
      if (tonumber(rec[3]) or 0) > 0 then entry[#entry + 1] = 'd'; entry[#entry + 1] = rec[3] end
      if rec[4] then entry[#entry + 1] = 'b'; entry[#entry + 1] = rec[4] end
      redis.call('HSET', rk, 'entry', redis.call('XADD', stream, '*', unpack(entry)))
      enqueued = enqueued + 1
    end
  end
end
return enqueued
