--[[
  Puts dead items back in the stream, their deliveries reset to none and
  their last failure forgotten, with the score they had when they were last
  leased, or ARGV[1].

  KEYS[1]  NAME:s       sorted set: item key -> score (waiting items)
  KEYS[2]  NAME:dlv     hash: item key -> deliveries so far
  KEYS[3]  NAME:dead    sorted set: dead item key -> its last score
  KEYS[4]  NAME:fail    hash: item key -> msgpack {reason, unix ms, delivery}
  KEYS[5]  NAME:limits  hash: flow control; aging's shift (includes/aging.lua)
-- @keys scores deliveries dead failures limits

  ARGV[1]  the score to come back with ("" for the remembered one; exact
           text; effective, as the remembered one, includes/aging.lua)
  ARGV[2]  "all": every dead item; "keys": the keys in ARGV[3..]

  Returns the number of items put back.
]]
-- @include batch
-- @include keycheck
-- @include aging

local found
if ARGV[2] == "all" then
  found = checked(dead, "zset", "ZRANGE", 0, -1, "WITHSCORES")
else
  local asked, seen = {}, {}
  for i = 3, #ARGV do
    if not seen[ARGV[i]] then
      asked[#asked + 1] = ARGV[i]
      seen[ARGV[i]] = true
    end
  end
  if #asked == 0 then return 0 end
  local died = checked(dead, "zset", "ZMSCORE", unpack(asked))
  found = {}
  for i, key in ipairs(asked) do
    if died[i] then
      found[#found + 1] = key
      found[#found + 1] = died[i]
    end
  end
end
if #found == 0 then return 0 end
expect(scores, "zset")
expect(deliveries, "hash")
expect(failures, "hash")
local shift = aging_shift(limits)
local back, keys = {}, {}
for i = 1, #found, 2 do
  back[i] = stored(ARGV[1] ~= "" and ARGV[1] or found[i + 1], shift)
  back[i + 1] = found[i]
  keys[#keys + 1] = found[i]
end
count_in_slices("ZADD", scores, back)
count_in_slices("ZREM", dead, keys)
count_in_slices("HDEL", deliveries, keys)
count_in_slices("HDEL", failures, keys)
return #keys
