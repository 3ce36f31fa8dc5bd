import { CLOCK_KEY, WARMING_KEY } from './cluster-keys.js';

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

/** Shared prelude of the scripts that only read: `now` in ms from the Redis clock, dead replicas pruned. */
export const PRELUDE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
`;

/**
 * Prelude of the scripts that decide on the counts or renew them (admission,
 * heartbeats, claims): `PRELUDE`, a local `ttl` (the liveness TTL, ms,
 * from `ttlArg`) and `warming` (ms of warm-up left, 0 when none). The
 * script's last argument is the clock's lifetime (`continuityMs`).
 *
 * Each run renews the clock key for that lifetime, within which no live
 * replica's deadline can pass. Finding it gone means Redis lost its state (a
 * restart, FLUSHALL, a failover to a stale copy) or ran no script for so long
 * that a live replica's deadline may have passed (Redis stalled, or no
 * replica could reach it). Either way a live replica's share
 * may be missing, or its deadline may have lapsed while it lived, so the
 * counts are not trusted for one liveness TTL: by then every live replica
 * has beaten and re-published its share. Meanwhile admissions and claims
 * are refused (503), never taken against a partial count. The first script
 * a new cluster runs starts a warm-up too: Redis cannot tell a new cluster
 * from one that lost its state.
 */
export function continuityPrelude(ttlArg: string): string {
  return `${PRELUDE}
local ttl = tonumber(${ttlArg})
if not redis.call('SET', '${CLOCK_KEY}', '1', 'PX', tonumber(ARGV[#ARGV]), 'GET') then
  redis.call('SET', '${WARMING_KEY}', '1', 'PX', ttl)
end
local warming = math.max(redis.call('PTTL', '${WARMING_KEY}'), 0)
`;
}

/**
 * KEYS: replicas zset, own ip share, own user share.
 * ARGV: replica id, ip, user, max per ip, max per user, ttl ms, share prefix, clock ms.
 * Returns 'ok', 'ip', 'user' or 'warming'.
 */
export const ADMIT_LUA = `${continuityPrelude('ARGV[6]')}
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if warming > 0 then return 'warming' end
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
 * ARGV: replica id, ttl ms, n ip entries, ip, count, …, n user entries, user, count, …, clock ms
 * Returns { live replicas, ms of warm-up left }.
 */
export const HEARTBEAT_LUA = `${continuityPrelude('ARGV[2]')}
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
return { redis.call('ZCARD', KEYS[1]), warming }
`;

/** KEYS: replicas zset, own ip share, own user share. ARGV: replica id. A clean exit. */
export const LEAVE_LUA = `
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
return 1
`;
