-- The unix time a cool-down ends, as whole seconds (rounded up, so that an
-- item never comes back early): mode "in" counts `seconds` from `now` (the
-- server's clock in unix seconds, includes/clock.lua), "at" takes it as a unix
-- time. nil for mode "none".
local function cool_down_end(mode, seconds, now)
  if mode == "none" then return nil end
  local at = tonumber(seconds)
  if mode == "in" then at = now + at end
  return string.format("%d", math.ceil(at))
end
