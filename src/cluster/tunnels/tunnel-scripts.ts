/**
 * Lua scripts of the cluster-wide tunnel registry and raw-port pool. Each is
 * atomic, one round trip, on Redis's clock (see cluster-scripts.ts for the
 * replica liveness layout they share).
 */

import { continuityPrelude, PRELUDE } from '../cluster-scripts.js';

/** `PORT_CLAIM_LUA`'s answer while the cluster state warms up. */
export const PORT_CLAIM_WARMING = -2;

/**
 * KEYS: replicas zset, tunnel key, own tunnel-users hash.
 * ARGV: replica id, ttl ms, user, max per user, record JSON, tunnel-users prefix, clock ms.
 * Returns 'ok', 'taken', 'user_limit' or 'warming'.
 */
export const TUNNEL_CLAIM_LUA = `${continuityPrelude('ARGV[2]')}
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if warming > 0 then return 'warming' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'taken' end
local count = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  count = count + (tonumber(redis.call('HGET', ARGV[6] .. id, ARGV[3])) or 0)
end
if count >= tonumber(ARGV[4]) then return 'user_limit' end
redis.call('SET', KEYS[2], ARGV[5], 'PX', ttl)
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
redis.call('PEXPIRE', KEYS[3], ttl)
return 'ok'
`;

/**
 * KEYS: tunnel key, own tunnel-users hash. ARGV: replica id, user.
 * Deletes the record only when this replica owns it; the user count never goes below zero.
 */
export const TUNNEL_RELEASE_LUA = `
local rec = redis.call('GET', KEYS[1])
if rec and cjson.decode(rec).replica == ARGV[1] then redis.call('DEL', KEYS[1]) end
if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
return 1
`;

/**
 * KEYS: replicas zset. ARGV: user, tunnel-users prefix.
 * Returns the user's tunnels over the live replicas.
 */
export const TUNNEL_COUNT_LUA = `${PRELUDE}
local count = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  count = count + (tonumber(redis.call('HGET', ARGV[2] .. id, ARGV[1])) or 0)
end
return count
`;

/**
 * KEYS: replicas zset. ARGV: tunnel-users prefix.
 * Returns the number of tunnels over the live replicas.
 */
export const TUNNEL_SIZE_LUA = `${PRELUDE}
local count = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  for _, v in ipairs(redis.call('HVALS', ARGV[1] .. id)) do count = count + tonumber(v) end
end
return count
`;

/**
 * KEYS: replicas zset, own ports hash.
 * ARGV: replica id, ttl ms, subdomain, from, max, port prefix, channel, clock ms.
 * Claims the lowest free port in [from, max]; returns it, -1 when none is
 * free, or -2 while warming up (a port whose holder's claim was lost would
 * look free).
 */
export const PORT_CLAIM_LUA = `${continuityPrelude('ARGV[2]')}
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if warming > 0 then return -2 end
local value = ARGV[1] .. ' ' .. ARGV[3]
for p = tonumber(ARGV[4]), tonumber(ARGV[5]) do
  if redis.call('SET', ARGV[6] .. p, value, 'NX', 'PX', ttl) then
    redis.call('HSET', KEYS[2], p, ARGV[3])
    redis.call('PEXPIRE', KEYS[2], ttl)
    redis.call('PUBLISH', ARGV[7], p)
    return p
  end
end
return -1
`;

/** KEYS: port key, own ports hash. ARGV: replica id, subdomain, port, channel. Frees the port when this owner holds it. */
export const PORT_RELEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] .. ' ' .. ARGV[2] then
  redis.call('DEL', KEYS[1])
  redis.call('HDEL', KEYS[2], ARGV[3])
  redis.call('PUBLISH', ARGV[4], ARGV[3])
end
return 1
`;

/**
 * The tunnel heartbeat: renews liveness, rewrites this replica's tunnels,
 * per-user counts and ports from its local truth, then lists every live
 * replica's ports with their tunnel records (for the listeners).
 *
 * KEYS: replicas zset, own tunnel-users hash, own ports hash.
 * ARGV: replica id, ttl ms, tunnel prefix, port prefix, ports prefix,
 *   n tunnels, (subdomain, record JSON)…, n users, (user, count)…, n ports, (port, subdomain)…, clock ms
 * Returns `{ n, lost port × n, port, record, port, record, … }`: the lost ports
 * are this replica's claims another replica now holds (its keys expired while
 * this one could not reach Redis, and the port was claimed again).
 */
export const TUNNEL_BEAT_LUA = `${continuityPrelude('ARGV[2]')}
local id = ARGV[1]
redis.call('ZADD', KEYS[1], now + ttl, id)
local i = 6
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('SET', ARGV[3] .. ARGV[i], ARGV[i + 1], 'PX', ttl)
  i = i + 2
end
redis.call('DEL', KEYS[2])
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
if n > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
redis.call('DEL', KEYS[3])
local lost = {}
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local key = ARGV[4] .. ARGV[i]
  local value = id .. ' ' .. ARGV[i + 1]
  local held = redis.call('GET', key)
  if (not held) or held == value then
    redis.call('SET', key, value, 'PX', ttl)
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  else
    lost[#lost + 1] = ARGV[i]
  end
  i = i + 2
end
if n > 0 then redis.call('PEXPIRE', KEYS[3], ttl) end
local out = { #lost }
for _, p in ipairs(lost) do out[#out + 1] = p end
for _, rid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local ports = redis.call('HGETALL', ARGV[5] .. rid)
  for k = 1, #ports, 2 do
    if redis.call('GET', ARGV[4] .. ports[k]) == rid .. ' ' .. ports[k + 1] then
      local rec = redis.call('GET', ARGV[3] .. ports[k + 1])
      if rec then
        out[#out + 1] = ports[k]
        out[#out + 1] = rec
      end
    end
  end
end
return out
`;
