--[[
  Whether a cluster's registry may have lost a name since it was last known
  whole: read beside SMEMBERS of the registry, in one round trip, by psnames
  and by everything that reads every stream's name (operations.py: names).
  Writes nothing.

  KEYS[1]  :ps:keys          set: the names of the streams (not read here:
                             SMEMBERS reads it, in the same round trip)
  KEYS[2]  {:ps:keys}:swept  string: the run_id of the server that held
                             the registry when a sweep last found every
                             stream in it (swept-2.lua)
-- @keys registry swept

  ARGV[]   none

  Returns this server's run_id when KEYS[2] names another server, or none
  (a sweep is due), else false. A run_id is new at every start of a
  server, so a failover, a restart and a move of the registry's slot each
  make a sweep due.
]]
-- @include runid

local server = run_id()
if redis.call("GET", swept) == server then
  return false
end
return server
