--[[
  Takes up to ARGV[1] of the highest-scored items, like pull-10.lua, but holds
  them under a token until a deadline instead of removing them: a held item is
  in no one else's pull, its value stays in NAME:t, and NAME:held remembers
  which token holds it, and the lease's record (NAME:lease) the score it had
  and its deliveries (includes/holding.lua). Leases that ran out give their
  items back first (includes/reclaim.lua). (leaseone-8.lua does the same for
  one item.)

  KEYS[1]  NAME:t       hash: item key -> value
  KEYS[2]  NAME:s       sorted set: item key -> score (waiting items)
  KEYS[3]  NAME:held    hash: held item key -> the token holding it
  KEYS[4]  NAME:leases  sorted set: token -> deadline (unix ms, server clock)
  KEYS[5]  NAME:lease   hash: token -> msgpack {max_deliveries, key, score, deliveries, ...}
  KEYS[6]  NAME:dlv     hash: item key -> deliveries (leases) so far, while not held
  KEYS[7]  NAME:dead    sorted set: dead item key -> its last score
  KEYS[8]  NAME:stats   hash: the stream's counters (includes/counters.lua)

  ARGV[1]  count, 1 to 1000
  ARGV[2]  the lease's token (random hex, made by the caller)
  ARGV[3]  the lease's length in ms
  ARGV[4]  max_deliveries (0: no limit)

  Returns {deadline, keys, values, scores, deliveries}: the deadline (unix ms)
  and four arrays in pull order, but deliveries is empty when every item is
  on its first; {} when nothing was leased.
]]
local values, scores, held, leases, lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local deliveries, dead = KEYS[6], KEYS[7]
local STATS = 8
-- @include batch
-- @include keycheck
-- @include clock
-- @include reclaim
-- @include counters

local count, token = tonumber(ARGV[1]), ARGV[2]
for i, kind in ipairs({"hash", "zset", "hash", "zset", "hash", "hash", "zset", "hash"}) do expect(i, kind) end
local now = now_ms()
local reclaimed = reclaim(now)
tally(STATS, "redelivered", reclaimed[1], "dead", reclaimed[2])

local taken, found, remembered = {}, {}, {}
while #taken < count do
  local want = count - #taken
  local page = redis.call("ZPOPMAX", scores, want)  -- (every key was checked: a write may come first)
  if #page == 0 then break end
  local members = {}
  for i = 1, #page, 2 do members[#members + 1] = page[i] end
  local got = redis.call("HMGET", values, unpack(members))  -- (1000 at most)
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

-- deliveries so far: NAME:dlv has those of items leased before (and given
-- back), which move into NAME:held while the item is held
local counts = nil
if redis.call("EXISTS", deliveries) == 1 then
  counts = redis.call("HMGET", deliveries, unpack(taken))
  local known = {}
  for i, key in ipairs(taken) do
    if counts[i] then known[#known + 1] = key end
    counts[i] = tonumber(counts[i] or 0) + 1
  end
  if #known > 0 then redis.call("HDEL", deliveries, unpack(known)) end
end
local owned, record = {}, {tonumber(ARGV[4])}
for i, key in ipairs(taken) do
  owned[2 * i - 1], owned[2 * i] = key, token
  record[3 * i - 1], record[3 * i], record[3 * i + 1] = key, remembered[i], counts and counts[i] or 1
end
redis.call("HSET", held, unpack(owned))  -- (2000 arguments at most: within unpack's limit)
local deadline = now + tonumber(ARGV[3])
redis.call("ZADD", leases, deadline, token)
redis.call("HSET", lease, token, cmsgpack.pack(record))
redis.call("HINCRBY", KEYS[STATS], "leased", #taken)
return {deadline, taken, found, remembered, counts or {}}
