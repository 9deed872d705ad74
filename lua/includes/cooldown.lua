-- The unix time a cool-down ends, as whole seconds (rounded up, so that an
-- item never comes back early): mode "in" counts `seconds` from the server's
-- clock, "at" takes it as a unix time. nil for mode "none". `time`: a reply
-- of TIME the script already has, or nil.
local function cool_down_end(mode, seconds, time)
  if mode == "none" then return nil end
  local at = tonumber(seconds)
  if mode == "in" then
    local now = time or redis.call("TIME")
    at = tonumber(now[1]) + tonumber(now[2]) / 1000000 + at
  end
  return string.format("%d", math.ceil(at))
end
