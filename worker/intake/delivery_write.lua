-- KEYS: the queue's list, its messages' hash, then each delivery's dedupe keys.
-- ARGV: the keys' lifetime in seconds, the queue depth from which new deliveries
-- are shed (0: none), then per delivery: its number of keys in KEYS (they follow
-- the previous delivery's), its record (the body's digest, a line break, the job
-- ids as JSON), the number of messages, and each message's Redis id and data.
-- Returns, per delivery: 1 and the stored record when it was already written,
-- 2 and its own record when it was shed, else 0 and its own record. The new
-- deliveries' messages are written together at the end, in the order they came
-- (in chunks: Lua's unpack takes a few thousand values at most).
local ttl = tonumber(ARGV[1])
local max_depth = tonumber(ARGV[2])
local full = max_depth > 0 and redis.call("LLEN", KEYS[1]) >= max_depth
local results, ids, fields = {}, {}, {}
local k = 3
local i = 3
while i <= #ARGV do
  local key_count = tonumber(ARGV[i])
  local record = ARGV[i + 1]
  local count = tonumber(ARGV[i + 2])
  local first = i + 3
  i = first + 2 * count
  local stored = false
  local claimed = key_count == 1 and not full
  if claimed then
    if not redis.call("SET", KEYS[k], record, "NX", "EX", ttl) then
      stored = redis.call("GET", KEYS[k])
    end
  else
    for j = k, k + key_count - 1 do
      stored = redis.call("GET", KEYS[j])
      if stored then break end
    end
  end
  if stored then
    results[#results + 1] = 1
    results[#results + 1] = stored
  elseif full then
    results[#results + 1] = 2
    results[#results + 1] = record
  else
    if not claimed then
      for j = k, k + key_count - 1 do
        redis.call("SET", KEYS[j], record, "EX", ttl)
      end
    end
    for m = first, first + 2 * count - 1, 2 do
      ids[#ids + 1] = ARGV[m]
      fields[#fields + 1] = ARGV[m]
      fields[#fields + 1] = ARGV[m + 1]
    end
    results[#results + 1] = 0
    results[#results + 1] = record
  end
  k = k + key_count
end
for first = 1, #ids, 1000 do
  redis.call("RPUSH", KEYS[1], unpack(ids, first, math.min(first + 999, #ids)))
end
for first = 1, #fields, 2000 do
  redis.call("HSET", KEYS[2], unpack(fields, first, math.min(first + 1999, #fields)))
end
return results
