--[[
  pspull of one item, purged: the rules of pull-10.lua with the fewest server
  calls (the single pull is the most common call of all).

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

  ARGV[1]  "1": gate the pulled key (add it to NAME:exc)
  ARGV[2]  cool-down: "none"; "in" (ARGV[3] seconds from the server's clock);
           "at" (ARGV[3] is a unix time). Stored rounded up to whole seconds.
  ARGV[3]  seconds (see ARGV[2])

  Returns {key, value}; {} when nothing was pulled. Leases that ran out give
  their items back first (includes/reclaim.lua). Counts what it did.
]]
local values, scores, gated, cooling = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local held, leases, lease, deliveries, dead = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local STATS = 10
-- @include batch
-- @include keycheck
-- @include cooldown
-- @include reclaim

local time = redis.call("TIME")  -- one TIME for the leases and the cool-down (includes/clock.lua, inline)
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

-- every key is read before the first write
expect(1, "hash")
local waiting = expect(2, "zset")
local gate = ARGV[1] == "1"
if gate then expect(3, "set") end
local at = cool_down_end(ARGV[2], ARGV[3], time)
if at then expect(4, "zset") end
-- leases that ran out come back first: the lease keys are read (and checked)
-- only when one has
if #checked(6, "zset", "ZRANGEBYSCORE", "-inf", now, "LIMIT", 0, 1) > 0 then
  for i, kind in ipairs({"hash", "zset", "hash", "hash", "zset", "hash"}) do expect(i + 4, kind) end
  local reclaimed = reclaim(now)
  if reclaimed[1] > 0 then redis.call("HINCRBY", KEYS[STATS], "redelivered", reclaimed[1]) end
  if reclaimed[2] > 0 then redis.call("HINCRBY", KEYS[STATS], "dead", reclaimed[2]) end
  waiting = redis.call("ZCARD", scores)
end
if waiting == 0 then return {} end
local counted = expect(8, "hash") > 0  -- (one HLEN: checks the key, and whether there is anything to forget)

-- the first write: the count (checked; taken back in the rare case that only
-- orphans were left)
checked(STATS, "hash", "HINCRBY", "pulled", 1)
local key, value
repeat
  local popped = redis.call("ZPOPMAX", scores)
  if #popped == 0 then
    redis.call("HINCRBY", KEYS[STATS], "pulled", -1)
    return {}
  end
  key = popped[1]
  value = redis.call("HGET", values, key)
until value  -- an orphan (no value) is dropped and not counted
redis.call("HDEL", values, key)
if counted then redis.call("HDEL", deliveries, key) end  -- gone for good, as acknowledged
if gate then redis.call("SADD", gated, key) end
if at then redis.call("ZADD", cooling, at, key) end
return {key, value}
