--[[
  Reads items' values in pull order (highest score first), from one rank to
  another, skipping orphans (sorted-set entries with no value). A listing read
  a page at a time is not a snapshot: items added or taken between two pages
  shift the ranks.

  KEYS[1]  NAME:s      sorted set: item key -> score
  KEYS[2]  NAME:t      hash: item key -> value
  KEYS[3]  NAME:limits hash: flow control; aging's shift (includes/aging.lua)
-- @keys scores values limits

  ARGV[1]  the first rank to read (0 is the highest-scored entry)
  ARGV[2]  the last rank to read; -1 for all
  ARGV[3]  "1": with each item's score

  Returns a flat array: key1, value1, key2, value2, ... (with scores: key1,
  value1, score1, ...; effective, includes/aging.lua), and last the number of ranks read (orphans included),
  so that a caller reading pages knows where the next one starts.
]]
-- @include batch
-- @include keycheck
-- @include aging

local withscores = ARGV[3] == "1"
local members
if withscores then
  members = checked(scores, "zset", "ZREVRANGE", ARGV[1], ARGV[2], "WITHSCORES")
  effective_pairs(members, aging_shift(limits))
else
  members = checked(scores, "zset", "ZREVRANGE", ARGV[1], ARGV[2])
end
if #members == 0 then return {0} end
expect(values, "hash")
local step = withscores and 2 or 1
local keys = {}
for i = 1, #members, step do keys[#keys + 1] = members[i] end
local found = call_in_slices("HMGET", values, keys)
local reply = {}
for i, key in ipairs(keys) do
  if found[i] then
    reply[#reply + 1] = key
    reply[#reply + 1] = found[i]
    if withscores then reply[#reply + 1] = members[2 * i] end
  end
end
reply[#reply + 1] = #keys
return reply
