-- The server's clock, never a client's: every lease deadline, delay and
-- cool-down counts from it. One TIME per call: unix milliseconds (whole, what
-- deadlines and delays are kept in) and unix seconds (with their fraction,
-- what cool-downs are kept in, rounded), and TIME's own reply.
local function clock()
  local time = redis.call("TIME")
  local seconds, micros = tonumber(time[1]), tonumber(time[2])
  return seconds * 1000 + math.floor(micros / 1000), seconds + micros / 1000000, time
end
