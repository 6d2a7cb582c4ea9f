-- KEYS: this minute's counter, the previous minute's, then the keys that would mark the
-- delivery as written before (a resend: it is not counted again). ARGV: the events asked
-- for, the limit per minute, how much of this minute has passed (0-1). Returns 0
-- when taken (and counted) or resent, else the milliseconds to wait before asking again.
for i = 3, #KEYS do
  if redis.call("EXISTS", KEYS[i]) == 1 then
    return 0
  end
end
local events = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local elapsed = tonumber(ARGV[3])
local previous = tonumber(redis.call("GET", KEYS[2]) or "0")
local current = tonumber(redis.call("GET", KEYS[1]) or "0")
if previous * (1 - elapsed) + current + events <= limit then
  redis.call("INCRBY", KEYS[1], events)
  redis.call("EXPIRE", KEYS[1], ARGV[4])
  return 0
end
local room = limit - current - events
if room < 0 or previous == 0 then
  return math.ceil((1 - elapsed) * 60000)
end
return math.max(1, math.ceil(((1 - room / previous) - elapsed) * 60000))
