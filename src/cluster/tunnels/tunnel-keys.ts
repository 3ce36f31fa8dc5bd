import { KEY_TAG } from '../cluster-keys.js';

/**
 * Redis keys of tunnels in cluster mode (same hash tag as the counters, so the
 * scripts may touch any of them and run unchanged on Redis Cluster).
 */

/** STRING `<prefix><subdomain>`: the tunnel's record (JSON, `ClusterTunnelRecord`), TTL renewed by its owner's heartbeat. */
export const TUNNEL_PREFIX = `${KEY_TAG}:tunnel:`;

/** HASH `<prefix><replica id>`: user → tunnels that replica holds for them. */
export const TUNNEL_USERS_PREFIX = `${KEY_TAG}:tusers:`;

/** STRING `<prefix><port>`: `<replica id> <subdomain>`, the raw port's holder (claimed with `SET NX`). */
export const PORT_PREFIX = `${KEY_TAG}:port:`;

/** HASH `<prefix><replica id>`: port → subdomain, the ports that replica holds (listing for the other replicas). */
export const REPLICA_PORTS_PREFIX = `${KEY_TAG}:tports:`;

/** Pub/sub channel: a raw port was claimed or released somewhere; listeners reconcile at once. */
export const PORTS_CHANNEL = `${KEY_TAG}:ports-changed`;

export function tunnelKey(subdomain: string): string {
  return TUNNEL_PREFIX + subdomain;
}

export function tunnelUsersKey(replicaId: string): string {
  return TUNNEL_USERS_PREFIX + replicaId;
}

export function portKey(port: number): string {
  return PORT_PREFIX + String(port);
}

export function replicaPortsKey(replicaId: string): string {
  return REPLICA_PORTS_PREFIX + replicaId;
}
