--[[
  Takes up to ARGV[1] of the highest-scored items, like pull-4.lua, but holds
  them under a token until a deadline instead of removing them: a held item is
  in no one else's pull, its value stays in NAME:t and its score is remembered
  in NAME:parked. Expired leases come back first (includes/reclaim.lua).

  KEYS[1]  NAME:t       hash: item key -> value
  KEYS[2]  NAME:s       sorted set: item key -> score (waiting items)
  KEYS[3]  NAME:held    hash: held item key -> token
  KEYS[4]  NAME:leases  sorted set: token -> deadline (unix ms, server clock)
  KEYS[5]  NAME:lease   hash: token -> msgpack {max_deliveries, key, key, ...}
  KEYS[6]  NAME:parked  hash: item key -> its score while not waiting
  KEYS[7]  NAME:dlv     hash: item key -> deliveries (leases) so far
  KEYS[8]  NAME:dead    sorted set: dead item key -> unix ms it died

  ARGV[1]  count, 1 to 1000
  ARGV[2]  the lease's token (random, made by the caller)
  ARGV[3]  the lease's length in ms
  ARGV[4]  max_deliveries (0: no limit)

  Returns {deadline, keys, values, scores, deliveries}: the deadline (unix ms)
  and four arrays in pull order; {} when nothing was leased.
]]
local values, scores, held, leases, lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local parked, deliveries, dead = KEYS[6], KEYS[7], KEYS[8]
-- @include batch
-- @include keycheck
-- @include clock
-- @include reclaim

local count, token = tonumber(ARGV[1]), ARGV[2]
expect(1, "hash")
expect(2, "zset")
expect(3, "hash")
expect(4, "zset")
expect(5, "hash")
expect(6, "hash")
expect(7, "hash")
expect(8, "zset")
local now = now_ms()
reclaim(now)

local taken, found, remembered = {}, {}, {}
while #taken < count do
  local want = count - #taken
  local page = redis.call("ZREVRANGE", scores, 0, want - 1, "WITHSCORES")
  if #page == 0 then break end
  redis.call("ZREMRANGEBYRANK", scores, -(#page / 2), -1)
  local members = {}
  for i = 1, #page, 2 do members[#members + 1] = page[i] end
  local got = call_in_slices("HMGET", values, members)
  for i, key in ipairs(members) do
    if got[i] then
      taken[#taken + 1] = key
      found[#found + 1] = got[i]
      remembered[#remembered + 1] = page[2 * i]
    end  -- (a score with no value was popped with the rest: dropped, not counted)
  end
  if #page / 2 < want then break end
end
if #taken == 0 then return {} end

local counts = call_in_slices("HMGET", deliveries, taken)
local owned, kept, delivered = {}, {}, {}
for i, key in ipairs(taken) do
  counts[i] = tonumber(counts[i] or 0) + 1
  owned[2 * i - 1], owned[2 * i] = key, token
  kept[2 * i - 1], kept[2 * i] = key, remembered[i]
  delivered[2 * i - 1], delivered[2 * i] = key, counts[i]
end
count_in_slices("HSET", held, owned)
count_in_slices("HSET", parked, kept)
count_in_slices("HSET", deliveries, delivered)
local deadline = now + tonumber(ARGV[3])
redis.call("ZADD", leases, deadline, token)
local record = {tonumber(ARGV[4])}
for i, key in ipairs(taken) do record[i + 1] = key end
redis.call("HSET", lease, token, cmsgpack.pack(record))
return {deadline, taken, found, remembered, counts}
