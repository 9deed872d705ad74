--[[
  Puts dead items back in the stream, their deliveries reset to none, with
  the score they had when they were last leased, or ARGV[1].

  KEYS[1]  NAME:s       sorted set: item key -> score (waiting items)
  KEYS[2]  NAME:parked  hash: item key -> its score while not waiting
  KEYS[3]  NAME:dlv     hash: item key -> deliveries so far
  KEYS[4]  NAME:dead    sorted set: dead item key -> unix ms it died

  ARGV[1]  the score to come back with ("" for the remembered one; exact text)
  ARGV[2]  "all": every dead item; "keys": the keys in ARGV[3..]

  Returns the number of items put back.
]]
local scores, parked, deliveries, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
-- @include batch
-- @include keycheck

local keys
if ARGV[2] == "all" then
  keys = checked(4, "zset", "ZRANGE", 0, -1)
else
  local asked, seen = {}, {}
  for i = 3, #ARGV do
    if not seen[ARGV[i]] then
      asked[#asked + 1] = ARGV[i]
      seen[ARGV[i]] = true
    end
  end
  if #asked == 0 then return 0 end
  local died = checked(4, "zset", "ZMSCORE", unpack(asked))
  keys = {}
  for i, key in ipairs(asked) do
    if died[i] then keys[#keys + 1] = key end
  end
end
if #keys == 0 then return 0 end
expect(1, "zset")
expect(2, "hash")
expect(3, "hash")
local remembered = call_in_slices("HMGET", parked, keys)
local back = {}
for i, key in ipairs(keys) do
  back[2 * i - 1] = ARGV[1] ~= "" and ARGV[1] or (remembered[i] or "0")
  back[2 * i] = key
end
count_in_slices("ZADD", scores, back)
count_in_slices("ZREM", dead, keys)
count_in_slices("HDEL", parked, keys)
count_in_slices("HDEL", deliveries, keys)
return #keys
