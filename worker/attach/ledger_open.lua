-- KEYS: attach lock, record, mint lock, the session's link record. ARGV: token,
-- lease ms, record TTL seconds, the "pending" value, then the fields to reserve
-- (set to it if absent). Returns false when the attach lock is taken, else {took
-- the mint lock (0/1), the record as it was before the reservations, the link
-- record's state when the mint lock was taken (a revocation holds it too, so the
-- state cannot change while it is held)}.
if not redis.call("set", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then
  return false
end
local record = redis.call("hgetall", KEYS[2])
local minting = 0
local link_state = false
if redis.call("hexists", KEYS[2], "link") == 0 then
  if redis.call("set", KEYS[3], ARGV[1], "NX", "PX", ARGV[2]) then
    minting = 1
    link_state = redis.call("hget", KEYS[4], "state")
  end
end
local reserved = 0
for i = 5, #ARGV do
  reserved = reserved + redis.call("hsetnx", KEYS[2], ARGV[i], ARGV[4])
end
if reserved > 0 then
  redis.call("expire", KEYS[2], ARGV[3])
end
return {minting, record, link_state}
