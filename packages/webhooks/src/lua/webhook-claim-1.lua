--[[
  Claim the webhooks that are due: each one is re-scored to now + lease, so no other dispatcher takes
  it while this one delivers, and it comes back by itself should this one die. The attempt is
  counted on the request record before it is made (a crash mid-attempt still counts as one).

  KEYS[1] <prefix>:webhooks   (ZSET request id -> next attempt, ms)
  ARGV[1] key prefix
  ARGV[2] now (ms)
  ARGV[3] lease (ms)
  ARGV[4] most entries to claim

  Keys named at run time, not declared: the records of the claimed ids (read from KEYS[1]). They
  carry the prefix's hash tag, so in a Redis Cluster they live in KEYS[1]'s slot.

  Returns one entry per claimed id:
  { id, attempt, callbackUrl }
  { id, 0, "" }   the record is gone (its result TTL ran out) or has no callback URL: entry removed
]]
local prefix, now, lease, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)) do
  local rk = prefix .. ':req:' .. id
  local url = redis.call('HGET', rk, 'callbackUrl')
  if url then
    redis.call('ZADD', KEYS[1], now + lease, id)
    out[#out + 1] = { id, redis.call('HINCRBY', rk, 'callbackAttempts', 1), url }
  else
    redis.call('ZREM', KEYS[1], id)
    out[#out + 1] = { id, 0, '' }
  end
end
return out
