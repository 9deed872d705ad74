--[[
  Finishes held items of a lease: they leave the stream, and gating and the
  cool-down apply now, as a pull's would (includes/acking.lua). Keys the
  token no longer holds are skipped, so acknowledging twice is harmless.
  Leases blocked on the stream's max_held are woken (includes/flow.lua).
  (acklease-15.lua does the same and leases the next items.)

  KEYS[1]  NAME:t       hash: item key -> value
  KEYS[2]  NAME:exc     set: gated keys
  KEYS[3]  NAME:exp     sorted set: cooling-down key -> unix time
  KEYS[4]  NAME:held    hash: held item key -> the token holding it
  KEYS[5]  NAME:leases  sorted set: token -> deadline (unix ms)
  KEYS[6]  NAME:lease   hash: token -> msgpack {max_deliveries, key, score, deliveries, ...}
  KEYS[7]  NAME:fail    hash: item key -> msgpack {reason, unix ms, delivery}
  KEYS[8]  NAME:stats   hash: the stream's counters (includes/counters.lua)
  KEYS[9]  NAME:limits  hash: flow control (includes/flow.lua)
  KEYS[10] NAME:wake    list: wake-up tokens for blocked pullers (includes/wake.lua)
-- @keys values gated cooling held leases lease failures stats limits wake

  ARGV[1]  the token
  ARGV[2]  "1": gate the keys (add them to NAME:exc)
  ARGV[3]  cool-down: "none", "in" or "at" (see includes/cooldown.lua)
  ARGV[4]  seconds (see ARGV[3])
  ARGV[5]  "all": every key the token holds; "keys": the keys in ARGV[6..]

  Returns the number of items acknowledged.
]]
-- @include keycheck
-- @include clock
-- @include cooldown
-- @include acking
-- @include wake
-- @include flow

local token = ARGV[1]
local wanted = nil
if ARGV[5] == "keys" then
  wanted = {}
  for i = 6, #ARGV do wanted[#wanted + 1] = ARGV[i] end
  if #wanted == 0 then return 0 end
end
local now, seconds = clock()  -- one TIME for the lease and the cool-down
local gate, at = ARGV[2] == "1", cool_down_end(ARGV[3], ARGV[4], seconds)

-- every key is read before the first write: NAME:t's is the first
local mine, others, failed = ack_reads(held, leases, lease, gated, cooling, failures, stats, token, wanted, now, gate, at)
if not mine then return 0 end
local queued = #mine > 0 and capped_wake(flow_limits(limits), wake)
local acked = ack_writes(values, held, leases, lease, gated, cooling, failures, stats, token, mine, others, failed, gate, at)
if queued then wake_pullers(wake, acked, queued) end
return acked
