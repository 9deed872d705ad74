--[[
  pslease of one item: the rules of lease-13.lua with the fewest server calls.
  Every key is read before the first write, by the reads the lease needs
  anyway, but NAME:lease, which is checked, and NAME:held, whose write comes
  first (a wrong type fails it with nothing written).

  KEYS[1]  NAME:t       hash: item key -> value
  KEYS[2]  NAME:s       sorted set: item key -> score (waiting items)
  KEYS[3]  NAME:exp     sorted set: cooling-down key -> unix time
  KEYS[4]  NAME:held    hash: held item key -> the token holding it
  KEYS[5]  NAME:leases  sorted set: token -> deadline (unix ms, server clock)
  KEYS[6]  NAME:lease   hash: token -> msgpack {max_deliveries, key, score, deliveries, ...}
  KEYS[7]  NAME:dlv     hash: item key -> deliveries (leases) so far, while not held
  KEYS[8]  NAME:dead    sorted set: dead item key -> its last score
  KEYS[9]  NAME:stats   hash: the stream's counters (includes/counters.lua)
  KEYS[10] NAME:delayed sorted set: delayed item key -> unix ms it becomes waiting
  KEYS[11] NAME:dscores sorted set: delayed item key -> the score it will wait with
  KEYS[12] NAME:fail    hash: item key -> msgpack {reason, unix ms, delivery}
  KEYS[13] NAME:limits hash: flow control (includes/flow.lua)
-- @keys values scores cooling held leases lease deliveries dead stats delayed delayed_scores failures limits

  ARGV[1]  the lease's token (random hex, made by the caller)
  ARGV[2]  the lease's length in ms
  ARGV[3]  max_deliveries (0: no limit)

  Returns {deadline, key, value, score, deliveries}; when nothing was leased,
  {} or {ms} as lease-13.lua. Flow control as in lease-13.lua
  (includes/flow.lua).
]]
-- @include keycheck
-- @include clock
-- @include flow

local token = ARGV[1]
local now, seconds = clock()
local flow = flow_limits(limits)
local shift = flow_shift(flow, now)  -- aging's (includes/aging.lua)
-- what is due comes first (the rarer path: its code is only set up here, to
-- keep the common call short); every key is read (and checked) only when
-- something is
local due_leases = #checked(leases, "zset", "ZRANGEBYSCORE", "-inf", now, "LIMIT", 0, 1) > 0
local due_cool_downs = #checked(cooling, "zset", "ZRANGEBYSCORE", "-inf", math.floor(seconds), "LIMIT", 0, 1) > 0
local due_items = #checked(delayed, "zset", "ZRANGEBYSCORE", "-inf", now, "LIMIT", 0, 1) > 0
if due_leases or due_cool_downs or due_items then
-- @include batch
-- @include reclaim
-- @include counters
-- @include due
  end_what_is_due(keys_by_name(), kinds_by_key(), now, math.floor(seconds), shift, due_leases, due_cool_downs, due_items)
end

local tokens = nil
if flow then
  local allowed, wait
  allowed, wait, tokens = allowance(flow, held, leases, now, 1)
  if allowed == 0 then return wait and {wait} or {} end
end

local key, value, score
local rank, orphans = 0, nil
repeat
  local top = checked(scores, "zset", "ZREVRANGE", rank, rank, "WITHSCORES")
  if #top == 0 then
    if orphans then redis.call("ZREM", scores, unpack(orphans)) end
    local first = checked(delayed, "zset", "ZRANGE", 0, 0, "WITHSCORES")  -- the next delayed item
    return first[2] and {tonumber(first[2]) - now} or {}
  end
  key, score = top[1], effective(top[2], shift)
  value = checked(values, "hash", "HGET", key)
  if not value then  -- an orphan (a score with no value): dropped, not counted
    orphans = orphans or {}
    orphans[#orphans + 1] = key
    rank = rank + 1
  end
until value
local before = checked(deliveries, "hash", "HGET", key)  -- deliveries so far, while not held
local count = tonumber(before or 0) + 1
expect(lease, "hash")
expect(stats, "hash")

checked(held, "hash", "HSET", key, token)  -- the first write
if orphans then redis.call("ZREM", scores, unpack(orphans)) end
redis.call("ZREM", scores, key)
if before then redis.call("HDEL", deliveries, key) end
local deadline = now + tonumber(ARGV[2])
redis.call("ZADD", leases, deadline, token)
redis.call("HSET", lease, token, cmsgpack.pack({tonumber(ARGV[3]), key, score, count}))
redis.call("HINCRBY", stats, "leased", 1)
spend(limits, tokens, now, 1)
return {deadline, key, value, score, count}
