-- KEYS: record, then the locks to release (held under ARGV[1]). ARGV: token,
-- record TTL seconds, number of fields to set (n), n field/value pairs, then
-- the fields to delete. One script rather than MULTI/EXEC: one command, so
-- one round trip and one reply to parse, twice a job.
local n = tonumber(ARGV[3])
local changed = false
if n > 0 then
  redis.call("hset", KEYS[1], unpack(ARGV, 4, 3 + 2 * n))
  changed = true
end
if #ARGV > 3 + 2 * n then
  redis.call("hdel", KEYS[1], unpack(ARGV, 4 + 2 * n, #ARGV))
  changed = true
end
if changed then
  redis.call("expire", KEYS[1], ARGV[2])
end
for i = 2, #KEYS do
  if redis.call("get", KEYS[i]) == ARGV[1] then
    redis.call("del", KEYS[i])
  end
end
return 1
