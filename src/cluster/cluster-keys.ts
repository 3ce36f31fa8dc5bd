/**
 * Redis key names of cluster mode. Every key carries the same hash tag, so all
 * of them live in one hash slot: the Lua scripts may read any replica's share,
 * and run unchanged on Redis Cluster (one node serves the slot).
 */
export const KEY_TAG = '{wsproxy}';

/** ZSET: replica id → liveness deadline (Redis server time, ms). */
export const REPLICAS_KEY = `${KEY_TAG}:replicas`;

/** Prefix of the per-replica share keys; the scripts append `<replica id>:ip` / `:user`. */
export const SHARE_PREFIX = `${KEY_TAG}:share:`;

/** HASH: client IP → connections this replica holds for it. */
export function shareIpKey(replicaId: string): string {
  return `${SHARE_PREFIX}${replicaId}:ip`;
}

/** HASH: user → connections this replica holds for them. */
export function shareUserKey(replicaId: string): string {
  return `${SHARE_PREFIX}${replicaId}:user`;
}

/**
 * STRING with a TTL of `continuityMs` (the liveness TTL less a beat and a
 * half), renewed by every admission, heartbeat and claim: its absence means
 * Redis lost its state or ran no script for so long that a live replica's
 * deadline may have passed.
 */
export const CLOCK_KEY = `${KEY_TAG}:clock`;

/** STRING with a TTL of one liveness TTL: while it exists the counts may be incomplete, and nothing is admitted or claimed. */
export const WARMING_KEY = `${KEY_TAG}:warming`;
