--[[
  The registry of a cluster, and whether it is known whole: read by psnames
  and by everything that reads every stream's name (operations.py: names).
  Writes nothing.

  KEYS[1]  :ps:keys          set: the names of the streams
  KEYS[2]  {:ps:keys}:swept  string: the run_id of the server that held
                             the registry when a sweep last found every
                             stream in it (swept-2.lua)
-- @keys registry swept

  Returns {names, run_id}: the names as SMEMBERS gives them; run_id this
  server's when KEYS[2] names another server, or none (the registry may have
  lost a name: a sweep is due), else false. A run_id is new at every start of
  a server, so a failover, a restart and a move of the registry's slot each
  make a sweep due.
]]

local run_id = string.match(redis.call("INFO", "server"), "run_id:(%x+)")
local names = redis.call("SMEMBERS", registry)
if redis.call("GET", swept) == run_id then
  return {names, false}
end
return {names, run_id}
