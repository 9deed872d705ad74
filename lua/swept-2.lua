--[[
  Marks a cluster's registry whole, once a sweep has put every stream it found
  in it (operations.py: names).

  KEYS[1]  :ps:keys          set: the names of the streams (not touched: it
                             says where the marker lives)
  KEYS[2]  {:ps:keys}:swept  string: the run_id of the server that held
                             the registry when a sweep last found every
                             stream in it
-- @keys registry swept

  ARGV[1]  the run_id registered-2.lua gave when the sweep began

  Returns 1 when KEYS[2] now names ARGV[1]; 0 when this server is another
  one than the sweep began on (a failover meanwhile may have lost what the
  sweep registered: the next read sweeps again).
]]
-- @include runid

if run_id() ~= ARGV[1] then
  return 0
end
redis.call("SET", swept, ARGV[1])
return 1
