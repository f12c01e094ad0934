--[[
  A stopping worker gives back requests it took from its queue but did not start: each still queued
  gets a new entry in its stream (at the end: stream ids only grow), which any other worker can take
  at once, and the one it held is acknowledged and deleted. Nothing counts as an attempt or a stall.
  A request no longer queued keeps its entry: if it is running, its lease runs out and it is
  reclaimed like any other.

  KEYS    two per request: its record, its stream
  ARGV    per request, 3 values: id, entry id, payload carried by the entry or ""

  Returns how many requests it gave back.
]]
local given = 0
for i = 1, #ARGV, 3 do
  local id, entry, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local k = (i - 1) / 3 * 2
  local rk, stream = KEYS[k + 1], KEYS[k + 2]
  local rec = redis.call('HMGET', rk, 'status', 'createdAt', 'deadline', 'batch', 'trace')
  if rec[1] == 'queued' then
    local fresh = { 'i', id, 't', rec[2] }
    if (tonumber(rec[3]) or 0) > 0 then fresh[#fresh + 1] = 'd'; fresh[#fresh + 1] = rec[3] end
    if rec[4] then fresh[#fresh + 1] = 'b'; fresh[#fresh + 1] = rec[4] end
    if rec[5] then fresh[#fresh + 1] = 'c'; fresh[#fresh + 1] = rec[5] end
    if payload ~= '' then fresh[#fresh + 1] = 'p'; fresh[#fresh + 1] = payload end
    redis.call('HSET', rk, 'entry', redis.call('XADD', stream, '*', unpack(fresh)))
    dropEntry(stream, entry)
    given = given + 1
  end
end
return given
