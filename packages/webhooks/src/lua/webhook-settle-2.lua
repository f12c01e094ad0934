--[[
  Record the result of one delivery attempt.

  KEYS[1] <prefix>:webhooks
  KEYS[2] the request record
  ARGV[1] key prefix (unused)
  ARGV[2] id
  ARGV[3] outcome: delivered | failed (given up) | retry
  ARGV[4] next attempt (ms), for retry
  ARGV[5] error of this attempt, "" when delivered

  The record gets callbackStatus (delivered | failed) and callbackError (the last error). Fields are
  written only to a record that still exists: HSET on a vanished one would create a key without TTL.
]]
local _, id, outcome, retryAt, err = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local rk = KEYS[2]
local exists = redis.call('EXISTS', rk) == 1
if outcome == 'retry' then
  -- XX: an entry another dispatcher settled meanwhile (this one outlived its lease) stays settled.
  redis.call('ZADD', KEYS[1], 'XX', retryAt, id)
  if exists then redis.call('HSET', rk, 'callbackError', err) end
  return 1
end
redis.call('ZREM', KEYS[1], id)
if exists then
  redis.call('HSET', rk, 'callbackStatus', outcome)
  if err ~= '' then redis.call('HSET', rk, 'callbackError', err) else redis.call('HDEL', rk, 'callbackError') end
end
return 1
