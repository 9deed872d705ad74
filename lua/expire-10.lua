--[[
  Ends the cool-downs that are due by the server's clock: each due key leaves
  NAME:exp, NAME:t and NAME:s (a held or dead item only leaves NAME:exp). At most ARGV[1] keys per call, so that one call
  stays short; the caller calls again while the reply says there is more.
  Leases that ran out give their items back too (includes/reclaim.lua).

  KEYS[1]  NAME:t    hash: item key -> value
  KEYS[2]  NAME:s    sorted set: item key -> score
  KEYS[3]  NAME:exc  set: gated keys
  KEYS[4]  NAME:exp  sorted set: cooling-down key -> unix time
  KEYS[5]  NAME:held    hash: held item key -> the token holding it
  KEYS[6]  NAME:leases  sorted set: token -> deadline (unix ms, server clock)
  KEYS[7]  NAME:lease   hash: token -> msgpack {max_deliveries, key, score, deliveries, ...}
  KEYS[8]  NAME:dlv     hash: item key -> deliveries so far, while not held
  KEYS[9]  NAME:dead    sorted set: dead item key -> its last score
  KEYS[10] NAME:stats   hash: the stream's counters (includes/counters.lua)

  ARGV[1]  the most keys to expire in this call

  A due key's deliveries leave with it; so do delivery counts that no item
  can own any more (no value, no score, no dead item left: what older
  versions left behind), which would otherwise keep the stream registered.

  Returns {expired, more, alive, redelivered, died}: how many keys expired; 1
  when a limit was reached (more may be due); 1 when any of the stream's keys
  still exists; how many items of leases that ran out came back, and went to
  NAME:dead. Counts them (NAME:stats, which alone does not keep a stream
  alive).
]]
local values, scores, gated, cooling = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local held, leases, lease, deliveries, dead = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local STATS = 10
-- @include batch
-- @include keycheck
-- @include clock
-- @include reclaim
-- @include counters

local limit = tonumber(ARGV[1])
local now = redis.call("TIME")[1]
local due = checked(4, "zset", "ZRANGEBYSCORE", "-inf", now, "LIMIT", 0, limit)
expect(1, "hash")
expect(2, "zset")
for i, kind in ipairs({"hash", "zset", "hash", "hash", "zset", "hash"}) do expect(i + 4, kind) end
local leased = {0, 0, 0}
if redis.call("EXISTS", leases) == 1 then leased = reclaim(now_ms()) end
if #due > 0 then
  count_in_slices("ZREM", cooling, due)
  -- a due cool-down takes a kept item with it (the pull that kept it was never
  -- acknowledged), but not one that a lease has taken since, nor a dead one:
  -- their value is still needed
  local gone = due
  if redis.call("EXISTS", held, dead) > 0 then
    local holders = call_in_slices("HMGET", held, due)
    local died = call_in_slices("ZMSCORE", dead, due)
    gone = {}
    for i, key in ipairs(due) do
      if not holders[i] and not died[i] then gone[#gone + 1] = key end
    end
  end
  count_in_slices("HDEL", values, gone)
  count_in_slices("ZREM", scores, gone)
  count_in_slices("HDEL", deliveries, gone)
end
tally(STATS, "expired", #due, "redelivered", leased[1], "dead", leased[2])
local items = redis.call("EXISTS", values, scores, dead) > 0
if not items then redis.call("DEL", deliveries) end
local alive = items or redis.call("EXISTS", gated, cooling, held, leases, lease) > 0
local more = (#due == limit or leased[3] == 1) and 1 or 0
return {#due, more, alive and 1 or 0, leased[1], leased[2]}
