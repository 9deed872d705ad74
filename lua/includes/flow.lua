-- Flow control (SPEC §12), enforced where items are handed out (pull-14.lua,
-- pullone-14.lua, lease-13.lua, leaseone-13.lua, acklease-15.lua), so that
-- every client obeys it at once; where held items leave (ack-10.lua,
-- acklease-15.lua, release-12.lua, remove-14.lua), leases blocked on max_held
-- are woken. NAME:limits (written by limit-3.lua) holds
-- `paused`, a token bucket (`rate` tokens per `per_ms`, at most `burst`; its
-- state: `tokens` as of `at`, unix ms by the server's clock; a bucket never
-- used is full), `max_held`, the most items leases may hold at once, and
-- aging's fields (includes/aging.lua, whose shift the five scripts apply to
-- what they take and give back). A stream with no limits has no
-- NAME:limits: that costs one EXISTS per call.
-- In three steps, so that a script reads the key before its first write and
-- counts what is held once its own acknowledgements are done.
-- @include keycheck
-- @include aging

-- flow_limits(limits): nil when the stream has no limits (the common case),
-- else its fields, read (and checked) by the caller before its first write.
local function flow_limits(limits)
  if redis.call("EXISTS", limits) == 0 then return nil end
  return checked(limits, "hash", "HMGET", "paused", "rate", "per_ms", "burst", "max_held", "tokens", "at",
    "aging_ms", "epoch", "base")
end

-- flow_shift(flow, now): aging's shift at `now` (unix ms), by the limits
-- `flow` (flow_limits'; nil: none, 0)
local function flow_shift(flow, now)
  if not flow then return 0 end
  return shift_of(flow[8], flow[9], flow[10], now)
end

-- bucket(flow, now): the tokens in the rate limit's bucket at `now` (unix
-- ms), refilled since `at` and at most `burst`, and the rate in tokens per
-- ms; nil when the stream has no rate limit. (stats-10.lua shows them.)
local function bucket(flow, now)
  if not flow[2] then return nil end
  local rate = tonumber(flow[2]) / tonumber(flow[3])
  local burst = tonumber(flow[4])
  if not flow[6] then return burst, rate end
  return math.min(burst, tonumber(flow[6]) + math.max(now - tonumber(flow[7]), 0) * rate), rate
end

-- allowance(flow, held, leases, now, count): how many of `count` items the
-- call may hand out at `now` (unix ms), by the limits `flow` (flow_limits'):
-- 0 while paused, at most the whole tokens in the bucket and, for a lease
-- (`held`, `leases`: NAME:held and NAME:leases; nil for a pull), at most
-- max_held less what leases hold. Returns that, then, when it is 0, how long
-- (ms) a blocked call should wait before it tries again (nil: until woken,
-- as for an empty stream), and the tokens in the bucket (nil: no rate).
local function allowance(flow, held, leases, now, count)
  if flow[1] then return 0, nil, nil end
  if held and flow[5] then
    local room = tonumber(flow[5]) - redis.call("HLEN", held)
    if room < 1 then
      -- a held item leaves by its acknowledgement, or when its lease runs out
      local first = redis.call("ZRANGE", leases, 0, 0, "WITHSCORES")
      return 0, first[2] and math.max(tonumber(first[2]) - now, 1) or nil, nil
    end
    count = math.min(count, room)
  end
  local tokens, rate = bucket(flow, now)
  if not tokens then return count, nil, nil end
  if tokens < 1 then return 0, math.ceil((1 - tokens) / rate), tokens end
  return math.min(count, math.floor(tokens)), nil, tokens
end

-- spend(limits, tokens, now, taken): the bucket, once `taken` (> 0) items
-- were handed out with `tokens` (allowance's) in it at `now`.
local function spend(limits, tokens, now, taken)
  if tokens and taken > 0 then
    redis.call("HSET", limits, "tokens", string.format("%.17g", tokens - taken), "at", now)
  end
end

-- capped_wake(flow, wake): for a script that frees held items, NAME:wake's
-- length (read and checked before its first write) when the stream has a
-- max_held (`flow`: flow_limits'); else nil. Leases blocked on max_held wait
-- on NAME:wake: wake_pullers(wake, freed, queued) hands them the slots freed
-- at once, instead of at the earliest lease deadline. A stream with no
-- max_held gets no wake-up token from this.
local function capped_wake(flow, wake)
  if flow and flow[5] then return checked(wake, "list", "LLEN") end
  return nil
end
