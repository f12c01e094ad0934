--[[
  A stopping worker gives back requests it took from its queue but did not start: each still queued
  gets a new entry in its stream (at the end: stream ids only grow), which any other worker can take
  at once, and the one it held is acknowledged and deleted. Nothing counts as an attempt or a stall.
  A request no longer queued keeps its entry: if it is running, its lease runs out and it is
  reclaimed like any other.

  ARGV[1] key prefix
  ARGV[2..] per request, 4 values: id, stream, entry id, payload carried by the entry or ""

  Returns how many requests it gave back.
]]
local prefix = ARGV[1]
local given = 0
for i = 2, #ARGV, 4 do
  local id, stream, entry, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local rk = prefix .. ':req:' .. id
  local rec = redis.call('HMGET', rk, 'status', 'createdAt', 'deadline', 'batch')
  if rec[1] == 'queued' then
    local fresh = { 'i', id, 't', rec[2] }
    if (tonumber(rec[3]) or 0) > 0 then fresh[#fresh + 1] = 'd'; fresh[#fresh + 1] = rec[3] end
    if rec[4] then fresh[#fresh + 1] = 'b'; fresh[#fresh + 1] = rec[4] end
    if payload ~= '' then fresh[#fresh + 1] = 'p'; fresh[#fresh + 1] = payload end
    redis.call('HSET', rk, 'entry', redis.call('XADD', stream, '*', unpack(fresh)))
    dropEntry(stream, entry)
    given = given + 1
  end
end
return given
