--[[
  Gives held items of a lease back: to the stream at once with their
  remembered score (or ARGV[2]), or, with a delay, held under a token of the
  release's own until the delay has passed (then includes/reclaim.lua brings
  them back, not counted redelivered: its record's max_deliveries is
  RELEASED). An item whose deliveries have reached the lease's
  max_deliveries goes to NAME:dead instead. The token loses them at once; keys
  it no longer holds are skipped (includes/holding.lua).

  KEYS[1]  NAME:s       sorted set: item key -> score (waiting items)
  KEYS[2]  NAME:held    hash: held item key -> the token holding it
  KEYS[3]  NAME:leases  sorted set: token -> deadline (unix ms)
  KEYS[4]  NAME:lease   hash: token -> msgpack {max_deliveries, key, score, deliveries, ...}
  KEYS[5]  NAME:dlv     hash: item key -> deliveries so far
  KEYS[6]  NAME:dead    sorted set: dead item key -> its last score
  KEYS[7]  NAME:stats   hash: the stream's counters (includes/counters.lua)

  ARGV[1]  the token
  ARGV[2]  the score to come back with ("" for the remembered one; exact text)
  ARGV[3]  the delay in ms (0: at once)
  ARGV[4]  the delayed release's own token (random hex, made by the caller; a
           new one for each call, since its record names what this call gave
           back, and only that)
  ARGV[5]  "1": the items were worked on; "0": they were not (a worker that
           stops gives back what it had not started): their delivery is not
           counted (deliveries go back by one) and they never go to NAME:dead
  ARGV[6]  "all": every key the token holds; "keys": the keys in ARGV[7..]

  Returns {released, died}: how many items the token gave back, of which how
  many went to NAME:dead; counts both.
]]
local scores, held, leases, lease, deliveries, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local HELD, LEASES, LEASE, STATS = 2, 3, 4, 7
-- @include batch
-- @include keycheck
-- @include clock
-- @include holding

local RELEASED = -1  -- (includes/reclaim.lua: back when the delay has passed, never redelivered nor dead)
local token, score, delay, later = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local attempted = ARGV[5] == "1"
local wanted = nil
if ARGV[6] == "keys" then
  wanted = {}
  for i = 7, #ARGV do wanted[#wanted + 1] = ARGV[i] end
  if #wanted == 0 then return {0, 0} end
end

-- every key is read before the first write: NAME:leases, NAME:lease and
-- NAME:held by holding(), the others here
local now = now_ms()
local mine, record, where, others = holding(token, wanted, now)
if not mine then return {0, 0} end
if #mine > 0 then
  expect(1, "zset")
  expect(5, "hash")
  expect(6, "zset")
  expect(STATS, "hash")
end
local max = record[1]
local back, buried, gone, counted, moved, kept = {}, {}, {}, {}, {}, {RELEASED}
for _, key in ipairs(mine) do
  local index = where[key]
  local last, count = record[index + 1], record[index + 2]
  if not attempted then count = count - 1 end
  local remembered = score ~= "" and score or last
  if attempted and max > 0 and count >= max then
    buried[#buried + 1] = last
    buried[#buried + 1] = key
  elseif delay > 0 then
    moved[#moved + 1] = key
    moved[#moved + 1] = later
    local n = #kept
    kept[n + 1], kept[n + 2], kept[n + 3] = key, remembered, count
  else
    back[#back + 1] = remembered
    back[#back + 1] = key
  end
  if attempted and max > 0 and count >= max or delay == 0 then
    gone[#gone + 1] = key
    if count > 0 then
      counted[#counted + 1] = key
      counted[#counted + 1] = count
    end
  end
end
count_in_slices("HDEL", held, gone)
count_in_slices("HSET", deliveries, counted)
count_in_slices("ZADD", scores, back)
count_in_slices("ZADD", dead, buried)
if #moved > 0 then  -- held by the release's token until the delay has passed (never dead then)
  count_in_slices("HSET", held, moved)
  redis.call("ZADD", leases, now + delay, later)
  redis.call("HSET", lease, later, cmsgpack.pack(kept))
end
if not others then forget(token) end
if #mine > 0 then
  redis.call("HINCRBY", KEYS[STATS], "released", #mine)
  if #buried > 0 then redis.call("HINCRBY", KEYS[STATS], "dead", #buried / 2) end
end
return {#mine, #buried / 2}
