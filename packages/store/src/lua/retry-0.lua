--[[
  Put requests whose run failed, with attempts left, back to wait for their next attempt: their
  entries are acknowledged and deleted, and each waits in its stream's delayed set until due, when
  promote-0.lua enqueues it again. A payload that travelled inside the entry is kept under the
  request's payload key meanwhile. Only started requests are retried; one still `queued` keeps its
  entry (see below). The record stays `running` (it is between attempts, not waiting
  for a first start) with a `retry` mark, so the next start does not take it for a stalled one.

  ARGV[1] key prefix
  ARGV[2..] per request, 5 values: id, stream, entry id, due time (ms), payload carried by the entry or ""

  Returns how many requests now wait for a retry.
]]
local prefix = ARGV[1]
local waiting = 0
for i = 2, #ARGV, 5 do
  local id, stream, entry, due, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local rk = prefix .. ':req:' .. id
  local status = redis.call('HGET', rk, 'status')
  if status == 'running' then
    if payload ~= '' then redis.call('SET', prefix .. ':payload:' .. id, payload) end
    redis.call('HSET', rk, 'retry', '1', 'entry', '')
    redis.call('HINCRBY', rk, 'attempts', 1)
    redis.call('ZADD', stream .. ':delayed', due, id)
    waiting = waiting + 1
    dropEntry(stream, entry)
  elseif status ~= 'queued' then
    -- Ended meanwhile (cancelled, expired, finished) or gone: nothing left to run.
    dropEntry(stream, entry)
  end
  -- A request still `queued` was never started (the caller skipped start-0.lua): its entry is kept,
  -- so its lease lapses and it runs again, rather than being acknowledged with nothing to bring it back.
end
return waiting
