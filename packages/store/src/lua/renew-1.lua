--[[
  Renew a worker's leases: the entries it still holds get their idle time reset (XCLAIM to itself,
  JUSTID, so no delivery is counted), which keeps other workers' reclaim (XAUTOCLAIM past the lease)
  away from them. An entry another worker has reclaimed meanwhile (this one stalled past its lease)
  is left to it, and so is one no longer pending.

  KEYS[1] stream
  ARGV[1] consumer group
  ARGV[2] this worker's consumer name
  ARGV[3..] entry ids it holds

  Returns the entry ids it no longer holds.
]]
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local mine, lost = {}, {}
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', stream, group, ARGV[i], ARGV[i], 1)
  if pending[1] and pending[1][2] == consumer then mine[#mine + 1] = ARGV[i] else lost[#lost + 1] = ARGV[i] end
end
if #mine > 0 then redis.call('XCLAIM', stream, group, consumer, 0, unpack(mine), 'JUSTID') end
return lost
