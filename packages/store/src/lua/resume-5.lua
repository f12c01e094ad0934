--[[
  Resume a paused queue: requests held while it was paused (submit-n.lua) get their stream entries,
  in the order they arrived; their payloads stay under their keys, where the worker reads them.
  Requests that ended meanwhile (cancelled, expired) are only forgotten.

  KEYS[1] paused flag
  KEYS[2], KEYS[3] the normal stream and its held list
  KEYS[4], KEYS[5] the background stream and its held list
  ARGV[1] key prefix

  Keys named at run time, not declared: the held requests' records (ids read from the held lists).
  They carry the prefix's hash tag, so in a Redis Cluster they live in the declared keys' slot.

  Returns how many requests it enqueued.
]]
local prefix = ARGV[1]
redis.call('DEL', KEYS[1])
local enqueued = 0
for i = 2, #KEYS, 2 do
  local stream, held = KEYS[i], KEYS[i + 1]
  local ids = redis.call('LRANGE', held, 0, -1)
  redis.call('DEL', held)
  for _, id in ipairs(ids) do
    local rk = prefix .. ':req:' .. id
    local rec = redis.call('HMGET', rk, 'status', 'createdAt', 'deadline', 'batch', 'trace')
    if rec[1] == 'queued' then
      local entry = { 'i', id, 't', rec[2] }
      if (tonumber(rec[3]) or 0) > 0 then entry[#entry + 1] = 'd'; entry[#entry + 1] = rec[3] end
      if rec[4] then entry[#entry + 1] = 'b'; entry[#entry + 1] = rec[4] end
      if rec[5] then entry[#entry + 1] = 'c'; entry[#entry + 1] = rec[5] end
      redis.call('HSET', rk, 'entry', redis.call('XADD', stream, '*', unpack(entry)))
      enqueued = enqueued + 1
    end
  end
end
return enqueued
