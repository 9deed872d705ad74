--[[
  Finishes held items of a lease: they leave the stream, and gating and the
  cool-down apply now, as a pull's would. Keys the token no longer holds are
  skipped, so acknowledging twice is harmless (includes/holding.lua). Their
  deliveries (a held item's are in its lease's record) and last failures are
  forgotten with them.

  KEYS[1]  NAME:t       hash: item key -> value
  KEYS[2]  NAME:exc     set: gated keys
  KEYS[3]  NAME:exp     sorted set: cooling-down key -> unix time
  KEYS[4]  NAME:held    hash: held item key -> the token holding it
  KEYS[5]  NAME:leases  sorted set: token -> deadline (unix ms)
  KEYS[6]  NAME:lease   hash: token -> msgpack {max_deliveries, key, score, deliveries, ...}
  KEYS[7]  NAME:fail    hash: item key -> msgpack {reason, unix ms, delivery}
  KEYS[8]  NAME:stats   hash: the stream's counters (includes/counters.lua)
-- @keys values gated cooling held leases lease failures stats

  ARGV[1]  the token
  ARGV[2]  "1": gate the keys (add them to NAME:exc)
  ARGV[3]  cool-down: "none", "in" or "at" (see includes/cooldown.lua)
  ARGV[4]  seconds (see ARGV[3])
  ARGV[5]  "all": every key the token holds; "keys": the keys in ARGV[6..]

  Returns the number of items acknowledged.
]]
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
local now, seconds = clock()  -- one TIME for the lease and the cool-down

-- every key is read before the first write: NAME:leases, NAME:lease and
-- NAME:held by holding(), the others here; NAME:t's is the first write
local mine, _, _, others = holding(held, leases, lease, token, wanted, now)
if not mine then return 0 end  -- the lease ran out: what it held comes back, or already did
if #mine > 0 then
  local gate = ARGV[2] == "1"
  if gate then expect(gated, "set") end
  local at = cool_down_end(ARGV[3], ARGV[4], seconds)
  if at then expect(cooling, "zset") end
  expect(stats, "hash")
  local failed = expect(failures, "hash") > 0
  checked(values, "hash", "HDEL", unpack(mine))  -- (a lease holds at most 1000 keys)
  redis.call("HDEL", held, unpack(mine))
  if failed then redis.call("HDEL", failures, unpack(mine)) end
  if gate then redis.call("SADD", gated, unpack(mine)) end
  if at then
    local entries = {}
    for i, key in ipairs(mine) do
      entries[2 * i - 1], entries[2 * i] = at, key
    end
    redis.call("ZADD", cooling, unpack(entries))  -- (2000 arguments at most: within unpack's limit)
  end
  redis.call("HINCRBY", stats, "acked", #mine)
end
if not others then forget(leases, lease, token) end
return #mine
