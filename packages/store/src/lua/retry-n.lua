--[[
  Put requests whose run failed, with attempts left, back to wait for their next attempt: their
  entries are acknowledged and deleted, and each waits in its stream's delayed set until due, when
  promote-n.lua enqueues it again. A payload that travelled inside the entry is kept under the
  request's payload key meanwhile. Only started requests are retried; one still `queued` keeps its
  entry (see below). The record stays `running` (it is between attempts, not waiting
  for a first start) with a `retry` mark, so the next start does not take it for a stalled one.

  KEYS    four per request: its record, its stream, the stream's delayed set, its payload
  ARGV    per request, 4 values: id, entry id, due time (ms; "" when the queue schedules the retry
          itself, as BullMQ does: then only the record changes), payload carried by the entry or ""

  Returns how many requests now wait for a retry.
]]
local waiting = 0
for i = 1, #ARGV, 4 do
  local id, entry, due, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local rk, stream, delayed, payloadKey = KEYS[i], KEYS[i + 1], KEYS[i + 2], KEYS[i + 3]
  local status = redis.call('HGET', rk, 'status')
  if status == 'running' then
    if payload ~= '' then redis.call('SET', payloadKey, payload) end
    redis.call('HSET', rk, 'retry', '1', 'entry', '')
    redis.call('HINCRBY', rk, 'attempts', 1)
    -- No due time (a BullMQ job): the queue schedules the next run itself; only the record changes.
    if due ~= '' then redis.call('ZADD', delayed, due, id) end
    waiting = waiting + 1
    dropEntry(stream, entry)
  elseif status ~= 'queued' then
    -- Ended meanwhile (cancelled, expired, finished) or gone: nothing left to run.
    dropEntry(stream, entry)
  end
  -- A request still `queued` was never started (the caller skipped start-n.lua): its entry is kept,
  -- so its lease lapses and it runs again, rather than being acknowledged with nothing to bring it back.
end
return waiting
