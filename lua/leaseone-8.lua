--[[
  pslease of one item: the rules of lease-8.lua with the fewest server calls.
  Every key is read before the first write, by the reads the lease needs
  anyway, but NAME:lease, which is checked, and NAME:held, whose write comes
  first (a wrong type fails it with nothing written).

  KEYS[1]  NAME:t       hash: item key -> value
  KEYS[2]  NAME:s       sorted set: item key -> score (waiting items)
  KEYS[3]  NAME:held    hash: held item key -> the token holding it
  KEYS[4]  NAME:leases  sorted set: token -> deadline (unix ms, server clock)
  KEYS[5]  NAME:lease   hash: token -> msgpack {max_deliveries, key, score, deliveries}
  KEYS[6]  NAME:dlv     hash: item key -> deliveries (leases) so far, while not held
  KEYS[7]  NAME:dead    sorted set: dead item key -> its last score
  KEYS[8]  NAME:stats   hash: the stream's counters (includes/counters.lua)

  ARGV[1]  the lease's token (random hex, made by the caller)
  ARGV[2]  the lease's length in ms
  ARGV[3]  max_deliveries (0: no limit)

  Returns {deadline, key, value, score, deliveries}; {} when nothing was leased.
]]
local values, scores, held, leases, lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local deliveries, dead = KEYS[6], KEYS[7]
local STATS = 8
-- @include keycheck

local token = ARGV[1]
local time = redis.call("TIME")  -- (includes/clock.lua, inline)
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if #checked(4, "zset", "ZRANGEBYSCORE", "-inf", now, "LIMIT", 0, 1) > 0 then
  -- leases that ran out come back first (the rarer path: its code is only
  -- set up here, to keep the common call short)
-- @include batch
-- @include reclaim
-- @include counters
  for i, kind in ipairs({"hash", "zset", "hash", "zset", "hash", "hash", "zset", "hash"}) do expect(i, kind) end
  local reclaimed = reclaim(now)
  tally(STATS, "redelivered", reclaimed[1], "dead", reclaimed[2])
end

local key, value, score
local rank, orphans = 0, nil
repeat
  local top = checked(2, "zset", "ZREVRANGE", rank, rank, "WITHSCORES")
  if #top == 0 then
    if orphans then redis.call("ZREM", scores, unpack(orphans)) end
    return {}
  end
  key, score = top[1], top[2]
  value = checked(1, "hash", "HGET", key)
  if not value then  -- an orphan (a score with no value): dropped, not counted
    orphans = orphans or {}
    orphans[#orphans + 1] = key
    rank = rank + 1
  end
until value
local before = checked(6, "hash", "HGET", key)  -- deliveries so far, while not held
local count = tonumber(before or 0) + 1
expect(5, "hash")
expect(STATS, "hash")

checked(3, "hash", "HSET", key, token)  -- the first write
if orphans then redis.call("ZREM", scores, unpack(orphans)) end
redis.call("ZREM", scores, key)
if before then redis.call("HDEL", deliveries, key) end
local deadline = now + tonumber(ARGV[2])
redis.call("ZADD", leases, deadline, token)
redis.call("HSET", lease, token, cmsgpack.pack({tonumber(ARGV[3]), key, score, count}))
redis.call("HINCRBY", KEYS[STATS], "leased", 1)
return {deadline, key, value, score, count}
