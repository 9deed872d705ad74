--[[
  Ends the cool-downs that are due by the server's clock: each due key leaves
  NAME:exp, NAME:t and NAME:s. At most ARGV[1] keys per call, so that one call
  stays short; the caller calls again while the reply says there is more.

  KEYS[1]  NAME:t    hash: item key -> value
  KEYS[2]  NAME:s    sorted set: item key -> score
  KEYS[3]  NAME:exc  set: gated keys
  KEYS[4]  NAME:exp  sorted set: cooling-down key -> unix time

  ARGV[1]  the most keys to expire in this call

  Returns {expired, more, alive}: how many keys expired; 1 when the limit was
  reached (more may be due); 1 when any of the four keys still exists.
]]
local values, scores, gated, cooling = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
-- @include batch
-- @include keycheck

local limit = tonumber(ARGV[1])
local now = redis.call("TIME")[1]
local due = checked(4, "zset", "ZRANGEBYSCORE", "-inf", now, "LIMIT", 0, limit)
if #due > 0 then
  expect(1, "hash")
  expect(2, "zset")
  count_in_slices("ZREM", cooling, due)
  count_in_slices("HDEL", values, due)
  count_in_slices("ZREM", scores, due)
end
local alive = redis.call("EXISTS", values, scores, gated, cooling) > 0
return {#due, #due == limit and 1 or 0, alive and 1 or 0}
