-- KEYS: the scheduled retries (sorted set, scored by due time in ms), their
-- messages (hash), the queue's list, the queue's messages (hash). ARGV: now in
-- ms, the most messages to move. Moves each due message onto the queue as
-- dramatiq's enqueue stores it; returns {how many moved, the earliest due time
-- left (ms) or false}.
local due = redis.call("zrangebyscore", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, ARGV[2])
for _, id in ipairs(due) do
  local data = redis.call("hget", KEYS[2], id)
  if data then
    redis.call("hset", KEYS[4], id, data)
    redis.call("rpush", KEYS[3], id)
  end
  redis.call("hdel", KEYS[2], id)
  redis.call("zrem", KEYS[1], id)
end
local earliest = redis.call("zrange", KEYS[1], 0, 0, "WITHSCORES")
return {#due, earliest[2] or false}
