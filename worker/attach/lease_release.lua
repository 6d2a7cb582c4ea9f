-- KEYS: the lock. ARGV: the holder's token. Deletes the lock only for its holder (a
-- lapsed lease may have been taken by another since); returns 1 when deleted.
if redis.call("get", KEYS[1]) == ARGV[1] then
  return redis.call("del", KEYS[1])
end
return 0
