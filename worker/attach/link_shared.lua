-- KEYS: the link's hash, the by-time index, the ticket's set, the prefix of ticket
-- sets, the revoked index. ARGV: session, token, target, link, now. Returns 0, writing nothing, for
-- the token of a revoked link (PostHog brought it back), else 1. A token other than
-- the recorded one is a new link: the old record (its tickets and traces) is replaced.
local current = redis.call("hget", KEYS[1], "token")
if current == ARGV[2] and redis.call("hget", KEYS[1], "state") == "revoked" then
  return 0
end
if current and current ~= ARGV[2] then
  redis.call("zrem", KEYS[5], ARGV[1])
  local old = redis.call("hkeys", KEYS[1])
  for _, name in ipairs(old) do
    if string.sub(name, 1, 7) == "ticket:" then
      redis.call("srem", KEYS[4] .. string.sub(name, 8), ARGV[1])
    end
  end
  redis.call("del", KEYS[1])
end
if redis.call("hsetnx", KEYS[1], "token", ARGV[2]) == 1 then
  redis.call("hset", KEYS[1], "shared_at", ARGV[5], "state", "active")
  redis.call("zadd", KEYS[2], ARGV[5], ARGV[1])
end
redis.call("hset", KEYS[1], "ticket:" .. ARGV[3], ARGV[4])
redis.call("persist", KEYS[1])
redis.call("sadd", KEYS[3], ARGV[1])
return 1
