--[[
  Ends the gates and cool-downs of the given keys, without adding anything:
  each may be added again at once.

  KEYS[1]  NAME:exc  set: gated keys
  KEYS[2]  NAME:exp  sorted set: cooling-down key -> unix time
-- @keys gated cooling

  ARGV[1]  "1": a dry run: count what would be lifted, write nothing
  ARGV[2..] item keys

  Returns how many of the keys were gated or cooling down (or both).
]]
-- @include keycheck

local keys = {}
local seen = {}
for i = 2, #ARGV do
  if not seen[ARGV[i]] then
    keys[#keys + 1] = ARGV[i]
    seen[ARGV[i]] = true
  end
end
if #keys == 0 then return 0 end
local is_gated = checked(gated, "set", "SMISMEMBER", unpack(keys))  -- (a call holds at most ADD_CHUNK keys)
local ends = checked(cooling, "zset", "ZMSCORE", unpack(keys))
local lifted = 0
for i = 1, #keys do
  if is_gated[i] == 1 or ends[i] then lifted = lifted + 1 end
end
if ARGV[1] == "1" then return lifted end
redis.call("SREM", gated, unpack(keys))
redis.call("ZREM", cooling, unpack(keys))
return lifted
