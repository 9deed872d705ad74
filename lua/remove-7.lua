--[[
  Removes the given items whole, whatever their state: waiting (NAME:s), held
  by a lease (NAME:held: the holding token's ack, release and extend skip it
  from now on, and it never comes back when the lease runs out) or dead
  (NAME:dead); with each its value and its deliveries. A key that is none of
  those (only gated or cooling down, or unknown) is not counted. The
  acknowledgement of a pull that kept its items, and how an operator takes an
  item out for good.

  KEYS[1]  NAME:t     hash: item key -> value
  KEYS[2]  NAME:s     sorted set: item key -> score (waiting items)
  KEYS[3]  NAME:exc   set: gated keys
  KEYS[4]  NAME:held  hash: held item key -> the token holding it
  KEYS[5]  NAME:dlv   hash: item key -> deliveries so far, while not held
  KEYS[6]  NAME:dead  sorted set: dead item key -> its last score
  KEYS[7]  NAME:stats hash: the stream's counters (includes/counters.lua)

  ARGV[1]  "1": gate the given keys (add them to NAME:exc)
  ARGV[2]  "1": a dry run: count what would be removed, write nothing
  ARGV[3..] item keys, each once

  Returns the number of items removed (or, in a dry run, that would be);
  counts them.
]]
local values, scores, gated, held, deliveries, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local STATS = 7
-- @include batch
-- @include keycheck

local gate, dry = ARGV[1] == "1", ARGV[2] == "1"
local keys = {}
for i = 3, #ARGV do keys[#keys + 1] = ARGV[i] end
if #keys == 0 then return 0 end

-- every key is read before the first write; the lease keys only when they exist
expect(2, "zset")
local waiting = call_in_slices("ZMSCORE", scores, keys)
local holders = expect(4, "hash") > 0 and call_in_slices("HMGET", held, keys)
local died = expect(6, "zset") > 0 and call_in_slices("ZMSCORE", dead, keys)
local removed = 0
for i = 1, #keys do
  if waiting[i] or holders and holders[i] or died and died[i] then removed = removed + 1 end
end
if dry then return removed end
expect(1, "hash")
if gate then expect(3, "set") end
local counted = expect(5, "hash") > 0
expect(STATS, "hash")

count_in_slices("ZREM", scores, keys)
count_in_slices("HDEL", values, keys)
if holders then count_in_slices("HDEL", held, keys) end
if died then count_in_slices("ZREM", dead, keys) end
if counted then count_in_slices("HDEL", deliveries, keys) end
if gate then count_in_slices("SADD", gated, keys) end
if removed > 0 then redis.call("HINCRBY", KEYS[STATS], "removed", removed) end
return removed
