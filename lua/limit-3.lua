--[[
  Sets a stream's flow control (SPEC §12; enforced by includes/flow.lua):
  pauses it, resumes it, or sets (or clears) its rate, max_held and aging. A
  stream with no limits and not paused has no NAME:limits at all (Redis
  deletes an emptied hash), so that handing items out costs one EXISTS more,
  no more. Aging (includes/aging.lua) turned on starts its epoch now: the
  items already waiting count as added now. Changed or cleared, the points
  gained so far are folded into `base` and the epoch starts again: no item
  is rewritten, and every effective score goes on from where it was. `base`
  is kept while items wait (their stored scores are offset by it), and
  dropped once NAME:s is empty when aging changes.
  Blocked pullers are woken when the stream resumes or its limits change
  (they look again, and wait again if they must).

  KEYS[1]  NAME:limits hash: paused, rate, per_ms, burst, max_held, tokens, at,
                       aging_ms, epoch, base
  KEYS[2]  NAME:s      sorted set: item key -> score (waiting items)
  KEYS[3]  NAME:wake   list: wake-up tokens for blocked pullers
-- @keys limits scores wake

  ARGV[1]  "pause", "resume" or "set"
  with "set":
  ARGV[2]  rate: tokens per ARGV[3] ms ("": no rate limit; ARGV[3..4] ignored)
  ARGV[3]  per_ms, whole ms >= 1
  ARGV[4]  burst: the most tokens the bucket holds, >= 1
  ARGV[5]  max_held: the most items held by leases at once ("": no cap)
  ARGV[6]  aging_ms: one point of priority per this many ms waited, whole ms
           >= 1 ("": no aging)

  Returns {changed, paused, rate, per_ms, burst, max_held, aging_ms}: 1 when
  "pause" or "resume" changed the state (else 0; "set" always 1), then the
  limits now set (nil for each not set).
]]
-- @include keycheck
-- @include wake
-- @include aging

local mode = ARGV[1]
local was_paused = checked(limits, "hash", "HEXISTS", "paused") == 1
local waiting = expect(scores, "zset")
local queued = expect(wake, "list")
local changed = 1
if mode == "pause" then
  if was_paused then changed = 0 else redis.call("HSET", limits, "paused", "1") end
elseif mode == "resume" then
  if was_paused then redis.call("HDEL", limits, "paused") else changed = 0 end
else
  if ARGV[2] == "" then
    redis.call("HDEL", limits, "rate", "per_ms", "burst", "tokens", "at")
  else
    local burst = tonumber(ARGV[4])
    -- a bucket in use keeps its tokens (setting the same rate again from cron
    -- fills nothing), at most the new burst
    local tokens = redis.call("HGET", limits, "tokens")
    if tokens and tonumber(tokens) > burst then redis.call("HSET", limits, "tokens", ARGV[4]) end
    redis.call("HSET", limits, "rate", ARGV[2], "per_ms", ARGV[3], "burst", ARGV[4])
  end
  if ARGV[5] == "" then
    redis.call("HDEL", limits, "max_held")
  else
    redis.call("HSET", limits, "max_held", ARGV[5])
  end
  local aging = redis.call("HMGET", limits, "aging_ms", "epoch", "base")
  if (aging[1] or "") ~= ARGV[6] then
    local now = clock()
    local base = waiting > 0 and shift_of(aging[1], aging[2], aging[3], now) or 0
    if ARGV[6] == "" then
      redis.call("HDEL", limits, "aging_ms", "epoch")
    else
      redis.call("HSET", limits, "aging_ms", ARGV[6], "epoch", now)
    end
    if base == 0 then
      redis.call("HDEL", limits, "base")
    else
      redis.call("HSET", limits, "base", string.format("%.17g", base))
    end
  end
end
if changed == 1 and mode ~= "pause" then wake_pullers(wake, math.max(waiting, 1), queued) end
local set = redis.call("HMGET", limits, "paused", "rate", "per_ms", "burst", "max_held", "aging_ms")
return {changed, set[1], set[2], set[3], set[4], set[5], set[6]}
