--[[
  Finishes held items of a lease: they leave the stream, and gating and the
  cool-down apply now, as a pull's would. Keys the token no longer holds are
  skipped, so acknowledging twice is harmless (includes/holding.lua).

  KEYS[1]  NAME:t       hash: item key -> value
  KEYS[2]  NAME:exc     set: gated keys
  KEYS[3]  NAME:exp     sorted set: cooling-down key -> unix time
  KEYS[4]  NAME:held    hash: held item key -> token
  KEYS[5]  NAME:leases  sorted set: token -> deadline (unix ms)
  KEYS[6]  NAME:lease   hash: token -> msgpack {max_deliveries, key, ...}
  KEYS[7]  NAME:parked  hash: item key -> its score while not waiting
  KEYS[8]  NAME:dlv     hash: item key -> deliveries so far

  ARGV[1]  the token
  ARGV[2]  "1": gate the keys (add them to NAME:exc)
  ARGV[3]  cool-down: "none", "in" or "at" (see includes/cooldown.lua)
  ARGV[4]  seconds (see ARGV[3])
  ARGV[5]  "all": every key the token holds; "keys": the keys in ARGV[6..]

  Returns the number of items acknowledged.
]]
local values, gated, cooling, held, leases, lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local parked, deliveries = KEYS[7], KEYS[8]
-- @include batch
-- @include keycheck
-- @include clock
-- @include cooldown
-- @include holding

local token = ARGV[1]
local wanted = nil
if ARGV[5] == "keys" then
  wanted = {}
  for i = 6, #ARGV do wanted[#wanted + 1] = ARGV[i] end
  if #wanted == 0 then return 0 end
end
for i = 4, 8 do expect(i, i == 5 and "zset" or "hash") end
local gate = ARGV[2] == "1"
local at = cool_down_end(ARGV[3], ARGV[4])
expect(1, "hash")
if gate then expect(2, "set") end
if at then expect(3, "zset") end

local mine, _, others = holding(token, wanted, now_ms())
if not mine then return 0 end  -- the lease ran out: what it held comes back, or already did
if #mine > 0 then
  count_in_slices("HDEL", held, mine)
  count_in_slices("HDEL", parked, mine)
  count_in_slices("HDEL", deliveries, mine)
  count_in_slices("HDEL", values, mine)
  if gate then count_in_slices("SADD", gated, mine) end
  if at then
    local entries = {}
    for i, key in ipairs(mine) do
      entries[2 * i - 1], entries[2 * i] = at, key
    end
    count_in_slices("ZADD", cooling, entries)
  end
end
if not others then forget(token) end
return #mine
