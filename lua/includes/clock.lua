-- The server's clock in whole milliseconds since the epoch: every lease
-- deadline and release delay counts from it, never from a client's clock.
local function now_ms()
  local now = redis.call("TIME")
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end
