--[[
  pspull of one item, purged: the rules of pull-4.lua with the fewest server
  calls (the single pull is the most common call of all).

  KEYS[1]  NAME:t    hash: item key -> value
  KEYS[2]  NAME:s    sorted set: item key -> score
  KEYS[3]  NAME:exc  set: gated keys
  KEYS[4]  NAME:exp  sorted set: cooling-down key -> unix time

  ARGV[1]  "1": gate the pulled key (add it to NAME:exc)
  ARGV[2]  cool-down: "none"; "in" (ARGV[3] seconds from the server's clock);
           "at" (ARGV[3] is a unix time). Stored rounded up to whole seconds.
  ARGV[3]  seconds (see ARGV[2])

  Returns {key, value}; {} when nothing was pulled.
]]
local values, scores, gated, cooling = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
-- @include keycheck
-- @include cooldown

-- every key is read before the first write (ZPOPMAX)
expect(1, "hash")
local gate = ARGV[1] == "1"
if gate then expect(3, "set") end
local at = cool_down_end(ARGV[2], ARGV[3])
if at then expect(4, "zset") end

local key, value
repeat
  local popped = checked(2, "zset", "ZPOPMAX")
  if #popped == 0 then return {} end
  key = popped[1]
  value = redis.call("HGET", values, key)
until value  -- an orphan (no value) is dropped and not counted
redis.call("HDEL", values, key)
if gate then redis.call("SADD", gated, key) end
if at then redis.call("ZADD", cooling, at, key) end
return {key, value}
