/**
 * Injection tokens of a shared tunnel registry and port pool. Cluster mode
 * (`REDIS_URL`) provides them; `TunnelModule` then uses them in place of the
 * in-memory ones.
 */
export const SHARED_TUNNEL_REGISTRY = Symbol('SHARED_TUNNEL_REGISTRY');
export const SHARED_PORT_POOL = Symbol('SHARED_PORT_POOL');
