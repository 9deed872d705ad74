-- Aging (SPEC §12): a waiting item gains one point of priority for every
-- `aging_ms` it has waited, at no cost per pull. NAME:s keeps each item's
-- score less the points every waiting item had gained when it was written,
-- the *shift*: shift(now) = base + (now - epoch) / aging_ms, with `aging_ms`,
-- `epoch` (unix ms, the server's clock) and `base` (points) in NAME:limits
-- (limit-3.lua: turning aging on starts the epoch; changing or clearing it
-- folds the points gained into `base`, so that no item is rewritten). An
-- item's effective score, the one every reply shows and every argument
-- gives, is its stored score + shift(now): the same shift for every item, so
-- NAME:s's order is the order by effective score at every moment, and an
-- older item's stored score is the higher of two given the same score. Only
-- NAME:s is shifted: a held, dead or delayed item does not wait, and keeps
-- its effective score as it was. Without NAME:limits, or with neither field,
-- the shift is 0 and every score is as stored (SPEC §1).
-- @include keycheck
-- @include clock

-- shift_of(aging_ms, epoch, base, now): the points gained by `now` (unix ms)
local function shift_of(aging_ms, epoch, base, now)
  local shift = base and tonumber(base) or 0
  if aging_ms then shift = shift + (now - tonumber(epoch)) / tonumber(aging_ms) end
  return shift
end

-- aging_shift(limits, now): the shift of a script that does not hand items
-- out (the five that do read it with the rest of NAME:limits: flow.lua). One
-- EXISTS when the stream has no limits; `now` (unix ms) is read from the
-- server's clock when not given and needed. Call it before the first write.
local function aging_shift(limits, now)
  if redis.call("EXISTS", limits) == 0 then return 0 end
  local fields = checked(limits, "hash", "HMGET", "aging_ms", "epoch", "base")
  if fields[1] and not now then now = clock() end
  return shift_of(fields[1], fields[2], fields[3], now)
end

-- effective(stored, shift): a score read from NAME:s (text), as shown; a
-- false or nil one as it is. With no shift, the very text stored.
local function effective(stored, shift)
  if shift == 0 or not stored then return stored end
  return string.format("%.17g", tonumber(stored) + shift)
end

-- stored(score, shift): an effective score (text or number) as NAME:s keeps it
local function stored(score, shift)
  if shift == 0 then return score end
  return string.format("%.17g", tonumber(score) - shift)
end

-- effective_pairs(found, shift): ZRANGE ... WITHSCORES's reply with each score
-- made effective, in place
local function effective_pairs(found, shift)
  if shift ~= 0 then
    for i = 2, #found, 2 do found[i] = effective(found[i], shift) end
  end
  return found
end
