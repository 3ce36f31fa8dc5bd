import type { WsproxyConfig } from '../config/config.schema.js';

/** A replica missing this many heartbeats in a row is dead; its share expires. */
export const LIVENESS_BEATS = 3;

/**
 * The shortest silence (no script run by any replica) after which Redis's
 * counts are not trusted until they warm up again (see `continuityPrelude`).
 * Shorter heartbeats than the default would otherwise make one replica's
 * event-loop stall of a fraction of a second look like a gap in the state.
 */
export const CONTINUITY_MIN_GAP_MS = 2000;

/**
 * Longest wait for one Redis reply. Short, so that an admission fails fast
 * (503) when Redis is unreachable without closing the connection (a partition,
 * not a refused TCP connection).
 */
export const REDIS_COMMAND_TIMEOUT_MS = 1000;

/** Longest wait for a TCP (or TLS) connection to Redis. */
export const REDIS_CONNECT_TIMEOUT_MS = 2000;

/** Reconnect backoff cap: admission resumes within about this long after Redis returns. */
export const REDIS_MAX_RECONNECT_DELAY_MS = 1000;

/** How long a replica's liveness and share keys live without a heartbeat, ms. */
export function livenessTtlMs(config: Pick<WsproxyConfig, 'clusterHeartbeatMs'>): number {
  return config.clusterHeartbeatMs * LIVENESS_BEATS;
}
