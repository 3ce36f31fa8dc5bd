import type { WsproxyConfig } from '../config/config.schema.js';

/** A replica missing this many heartbeats in a row is dead; its share expires. */
export const LIVENESS_BEATS = 3;

/**
 * The shortest liveness TTL, ms, whatever the heartbeat. It is also the
 * shortest warm-up after Redis lost its state, which must outlast a replica's
 * reconnection (backoff up to `REDIS_MAX_RECONNECT_DELAY_MS`, then the
 * connection itself), and it keeps the continuity clock (see
 * `continuityMs`) from lapsing at an event-loop pause of a few hundred
 * milliseconds when heartbeats are short.
 */
export const MIN_LIVENESS_TTL_MS = 3000;

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

/** How long a replica's liveness and share keys live without a heartbeat, ms: three beats, at least `MIN_LIVENESS_TTL_MS`. */
export function livenessTtlMs(config: Pick<WsproxyConfig, 'clusterHeartbeatMs'>): number {
  return Math.max(config.clusterHeartbeatMs * LIVENESS_BEATS, MIN_LIVENESS_TTL_MS);
}

/**
 * How long the continuity clock lives after a script (see
 * `continuityPrelude`), ms: the liveness TTL less a beat and a half. A live
 * replica beat at most a beat, and half a beat of lateness, before the last
 * script, so while the clock lives no live replica's deadline has passed;
 * once it has lapsed, one may have.
 */
export function continuityMs(config: Pick<WsproxyConfig, 'clusterHeartbeatMs'>): number {
  return livenessTtlMs(config) - Math.ceil(config.clusterHeartbeatMs * 1.5);
}
