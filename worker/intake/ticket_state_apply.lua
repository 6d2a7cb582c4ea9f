-- KEYS: the ticket's last-change time, the sorted set of solved tickets.
-- ARGV: the change's time (ms), the oldest time still ordered (ms), the
-- last-change key's lifetime (s), 1 to solve or 0 to reopen, the time the links
-- end (a solving), the ticket. Returns 1 applied, 0 a later change was applied
-- before, 2 too old to be ordered.
local stated = tonumber(ARGV[1])
if stated < tonumber(ARGV[2]) then
  return 2
end
local last = redis.call("GET", KEYS[1])
if last and tonumber(last) > stated then
  return 0
end
redis.call("SET", KEYS[1], ARGV[1], "EX", ARGV[3])
if ARGV[4] == "1" then
  redis.call("ZADD", KEYS[2], "NX", ARGV[5], ARGV[6])
else
  redis.call("ZREM", KEYS[2], ARGV[6])
end
return 1
