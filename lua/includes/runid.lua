-- Which server runs the script (registered-2.lua, swept-2.lua): its run_id,
-- new at every start of a server, so that a failover, a restart or a move of
-- a slot to another server each give another one.
local function run_id()
  return string.match(redis.call("INFO", "server"), "run_id:(%x+)")
end
