--[[
  Gives held items of a lease back: to the stream at once with their
  remembered score (or ARGV[2]), or, with a delay, held under a token of the
  release's own until the delay has passed (then includes/reclaim.lua brings
  them back). An item whose deliveries have reached the lease's
  max_deliveries goes to NAME:dead instead. The token loses them at once; keys
  it no longer holds are skipped (includes/holding.lua).

  KEYS[1]  NAME:s       sorted set: item key -> score (waiting items)
  KEYS[2]  NAME:held    hash: held item key -> token
  KEYS[3]  NAME:leases  sorted set: token -> deadline (unix ms)
  KEYS[4]  NAME:lease   hash: token -> msgpack {max_deliveries, key, ...}
  KEYS[5]  NAME:parked  hash: item key -> its score while not waiting
  KEYS[6]  NAME:dlv     hash: item key -> deliveries so far
  KEYS[7]  NAME:dead    sorted set: dead item key -> unix ms it died

  ARGV[1]  the token
  ARGV[2]  the score to come back with ("" for the remembered one; exact text)
  ARGV[3]  the delay in ms (0: at once)
  ARGV[4]  the delayed release's own token (random, made by the caller)
  ARGV[5]  "all": every key the token holds; "keys": the keys in ARGV[6..]

  Returns {released, died}: how many items the token gave back, of which how
  many went to NAME:dead.
]]
local scores, held, leases, lease, parked = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local deliveries, dead = KEYS[6], KEYS[7]
-- @include batch
-- @include keycheck
-- @include clock
-- @include holding

local token, score, delay = ARGV[1], ARGV[2], tonumber(ARGV[3])
local wanted = nil
if ARGV[5] == "keys" then
  wanted = {}
  for i = 6, #ARGV do wanted[#wanted + 1] = ARGV[i] end
  if #wanted == 0 then return {0, 0} end
end
expect(1, "zset")
for i = 2, 6 do expect(i, i == 3 and "zset" or "hash") end
expect(7, "zset")

local now = now_ms()
local mine, max, others = holding(token, wanted, now)
if not mine then return {0, 0} end
local counts = #mine > 0 and call_in_slices("HMGET", deliveries, mine) or {}
local remembered = #mine > 0 and call_in_slices("HMGET", parked, mine) or {}
local back, later, buried, unparked, kept = {}, {}, {}, {}, {}
for i, key in ipairs(mine) do
  if max > 0 and tonumber(counts[i] or 0) >= max then
    buried[#buried + 1] = now
    buried[#buried + 1] = key
  elseif delay > 0 then
    later[#later + 1] = key
    if score ~= "" then
      kept[#kept + 1] = key
      kept[#kept + 1] = score
    end
  else
    back[#back + 1] = score ~= "" and score or (remembered[i] or "0")
    back[#back + 1] = key
    unparked[#unparked + 1] = key
  end
end
if #back > 0 then
  count_in_slices("ZADD", scores, back)
  count_in_slices("HDEL", parked, unparked)
end
if #buried > 0 then count_in_slices("ZADD", dead, buried) end
local gone = {}
for i = 2, #back, 2 do gone[#gone + 1] = back[i] end
for i = 2, #buried, 2 do gone[#gone + 1] = buried[i] end
if #gone > 0 then count_in_slices("HDEL", held, gone) end
if #later > 0 then
  local moved = {}
  for _, key in ipairs(later) do
    moved[#moved + 1] = key
    moved[#moved + 1] = ARGV[4]
  end
  count_in_slices("HSET", held, moved)
  if #kept > 0 then count_in_slices("HSET", parked, kept) end
  redis.call("ZADD", leases, now + delay, ARGV[4])
  local record = {0}
  for i, key in ipairs(later) do record[i + 1] = key end
  redis.call("HSET", lease, ARGV[4], cmsgpack.pack(record))
end
if not others then forget(token) end
return {#mine, #buried / 2}
