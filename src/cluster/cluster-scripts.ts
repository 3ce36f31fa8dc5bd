/**
 * The Lua scripts of the cluster counters. Each runs atomically in Redis, so a
 * check-and-increment is one round trip and no other replica can interleave.
 * Time is Redis's own (`TIME`), so replicas' clocks never matter.
 *
 * Layout (see cluster-keys.ts): a ZSET of live replicas scored by deadline, and
 * per replica two hashes (its share of per-IP and per-user counts) that expire
 * with its liveness unless the heartbeat renews them. A count is the sum over
 * the replicas whose deadline has not passed.
 *
 * The share keys of other replicas are built inside the scripts; they carry the
 * same hash tag as the declared keys, so they are in the same slot. The ZSET
 * never expires (replicas may run different heartbeats); every script prunes
 * the members whose deadline has passed.
 */

/** Shared prelude: `now` in ms from the Redis clock, dead replicas pruned. */
const PRELUDE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
`;

/**
 * KEYS: replicas zset, own ip share, own user share.
 * ARGV: replica id, ip, user, max per ip, max per user, ttl ms, share prefix.
 * Returns 'ok', 'ip' or 'user'.
 */
export const ADMIT_LUA = `${PRELUDE}
local ttl = tonumber(ARGV[6])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local ipCount = 0
local userCount = 0
for _, id in ipairs(ids) do
  ipCount = ipCount + (tonumber(redis.call('HGET', ARGV[7] .. id .. ':ip', ARGV[2])) or 0)
  userCount = userCount + (tonumber(redis.call('HGET', ARGV[7] .. id .. ':user', ARGV[3])) or 0)
end
if ipCount >= tonumber(ARGV[4]) then return 'ip' end
if userCount >= tonumber(ARGV[5]) then return 'user' end
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return 'ok'
`;

/**
 * KEYS: own ip share, own user share. ARGV: ip, user.
 * A field never goes below zero: on a Redis restarted empty the decrement
 * leaves nothing behind, and the next heartbeat re-publishes the truth.
 */
export const RELEASE_LUA = `
local function dec(key, field)
  if redis.call('HINCRBY', key, field, -1) <= 0 then redis.call('HDEL', key, field) end
end
dec(KEYS[1], ARGV[1])
dec(KEYS[2], ARGV[2])
return 1
`;

/**
 * Rewrites this replica's share from its local truth and renews its liveness.
 * KEYS: replicas zset, own ip share, own user share.
 * ARGV: replica id, ttl ms, n ip entries, ip, count, …, n user entries, user, count, …
 * Returns the number of live replicas.
 */
export const HEARTBEAT_LUA = `${PRELUDE}
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
local i = 3
for k = 2, 3 do
  local n = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, n do
    redis.call('HSET', KEYS[k], ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  if n > 0 then redis.call('PEXPIRE', KEYS[k], ttl) end
end
return redis.call('ZCARD', KEYS[1])
`;

/** KEYS: replicas zset, own ip share, own user share. ARGV: replica id. A clean exit. */
export const LEAVE_LUA = `
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
return 1
`;
