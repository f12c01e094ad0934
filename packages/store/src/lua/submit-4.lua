--[[
  Submit one request in one round trip: serve it from the cache, attach it to an identical request
  already in flight, or create its record and payload for a new job.

  KEYS[1] cache key           <prefix>:cache:<cacheKey>
  KEYS[2] in-flight key       <prefix>:inflight:<cacheKey>
  KEYS[3] request record      <prefix>:req:<id>
  KEYS[4] payload             <prefix>:payload:<id>
  ARGV[1] id
  ARGV[2] now (ms)
  ARGV[3] "1" to use the cache and coalesce, "0" not to
  ARGV[4] result TTL (s) for a record that is already terminal
  ARGV[5] payload bytes
  ARGV[6] key prefix
  ARGV[7..] record fields, as field/value pairs

  Returns
  { "cached", record }    the record was written as succeeded from the cache entry; its HGETALL
  { "coalesced", leader } the record follows <leader>; no job is needed
  { "queued" }            record and payload written, id added to <prefix>:unqueued; the caller
                          enqueues the job (and the sweeper does, should the caller die first)
]]
local id, now, useCache, resultTtl, payload, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end

if useCache == '1' then
  local hit = redis.call('GET', KEYS[1])
  if hit then
    redis.call('HSET', KEYS[3], 'status', 'succeeded', 'cached', '1', 'coalesced', '0', 'outputs', hit,
      'startedAt', now, 'finishedAt', now, 'queueMs', '0', 'batchWaitMs', '0', 'inferMs', '0', 'totalMs', '0',
      unpack(fields))
    redis.call('EXPIRE', KEYS[3], resultTtl)
    return { 'cached', redis.call('HGETALL', KEYS[3]) }
  end
  local leader = redis.call('GET', KEYS[2])
  if leader then
    local leaderState = redis.call('HMGET', prefix .. ':req:' .. leader, 'status', 'startedAt')
    local status = 'queued'
    if leaderState[1] == 'running' then status = 'running' end
    redis.call('HSET', KEYS[3], 'status', status, 'cached', '0', 'coalesced', '1', 'leader', leader, unpack(fields))
    if leaderState[2] then redis.call('HSET', KEYS[3], 'startedAt', leaderState[2]) end
    redis.call('RPUSH', prefix .. ':followers:' .. leader, id)
    return { 'coalesced', leader }
  end
  redis.call('SET', KEYS[2], id)
end

redis.call('HSET', KEYS[3], 'status', 'queued', 'cached', '0', 'coalesced', '0', unpack(fields))
redis.call('SET', KEYS[4], payload)
-- Accepted but not yet enqueued: if the caller dies before adding the job, a sweeper will.
redis.call('ZADD', prefix .. ':unqueued', now, id)
return { 'queued' }
