-- The stream's counters (SPEC §8): NAME:stats, a hash of cumulative counts of
-- what the scripts did. A call adds its counts once each (one HINCRBY per
-- counter it changed, never one per item).
-- @include keycheck
--
-- tally(stats, field, n, field, n, ...): HINCRBY of each non-zero n on the
-- key `stats`. The first is checked, so that a script may make it its first
-- write: a NAME:stats of the wrong type then fails the call with nothing
-- written. (A script that writes before counting checks the key first.)
local function tally(stats, ...)
  local first = true
  for i = 1, select("#", ...), 2 do
    local field, n = select(i, ...)
    if n ~= 0 then
      if first then
        checked(stats, "hash", "HINCRBY", field, n)
        first = false
      else
        redis.call("HINCRBY", stats, field, n)
      end
    end
  end
end
