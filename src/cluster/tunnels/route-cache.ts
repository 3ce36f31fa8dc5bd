import type { Clock } from '../../common/clock.js';
import type { ClusterTunnelRecord } from './cluster-tunnel-state.js';

/**
 * Injection token of the clock the route cache ages its entries by; without
 * one, the wall clock. Tests give a replica a clock they move by hand, so a
 * cached owner stays cached for as long as a scenario needs it.
 */
export const ROUTE_CACHE_CLOCK = Symbol('ROUTE_CACHE_CLOCK');

/** Longest time a forwarding route is reused without asking Redis. */
export const ROUTE_CACHE_MAX_MS = 1000;
/** Routes kept at most (subdomains are random: a scan of made-up ones must not grow the map). */
export const ROUTE_CACHE_MAX_ENTRIES = 10_000;

/** Where other replicas' tunnels are, as last read from Redis: subdomain → record, each reused for `ttlMs`. */
export class RouteCache {
  private readonly routes = new Map<string, { record: ClusterTunnelRecord; at: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly clock: Clock,
  ) {}

  /** The owner of `subdomain` read less than the TTL ago, if any. */
  get(subdomain: string): ClusterTunnelRecord | undefined {
    const cached = this.routes.get(subdomain);
    return cached && this.clock.now() - cached.at < this.ttlMs ? cached.record : undefined;
  }

  set(subdomain: string, record: ClusterTunnelRecord): void {
    if (this.routes.size >= ROUTE_CACHE_MAX_ENTRIES) this.routes.clear();
    this.routes.set(subdomain, { record, at: this.clock.now() });
  }

  forget(subdomain: string): void {
    this.routes.delete(subdomain);
  }
}
