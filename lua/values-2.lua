--[[
  Reads items' values in pull order (highest score first), skipping orphans
  (sorted-set entries with no value).

  KEYS[1]  NAME:s    sorted set: item key -> score
  KEYS[2]  NAME:t    hash: item key -> value

  ARGV[1]  the last rank to read (0 is the highest-scored entry); -1 for all

  Returns a flat array: key1, value1, key2, value2, ...
]]
local scores, values = KEYS[1], KEYS[2]
-- @include batch
-- @include keycheck

local members = checked(1, "zset", "ZREVRANGE", 0, ARGV[1])
if #members == 0 then return {} end
expect(2, "hash")
local found = call_in_slices("HMGET", values, members)
local reply = {}
for i, key in ipairs(members) do
  if found[i] then
    reply[#reply + 1] = key
    reply[#reply + 1] = found[i]
  end
end
return reply
