/** Outcome of an atomic check-and-increment of the per-IP and per-user counters. */
export type AcquireOutcome = 'ok' | 'ip' | 'user';

/**
 * Where concurrent-connection counts live. The in-memory store serves one
 * replica; a shared store (Redis, cluster mode) replaces it behind this
 * interface without the callers changing.
 */
export interface ConnectionCounterStore {
  /** Checks both limits and increments both counters atomically, or changes nothing. */
  tryAcquire(ip: string, user: string, maxPerIp: number, maxPerUser: number): Promise<AcquireOutcome>;
  /** Gives back one slot of each counter taken by a successful `tryAcquire`. */
  release(ip: string, user: string): Promise<void>;
  /** Current counts, for tests and diagnostics. */
  snapshot(): Promise<{ perIp: Record<string, number>; perUser: Record<string, number> }>;
}

export const CONNECTION_COUNTER_STORE = Symbol('CONNECTION_COUNTER_STORE');

/**
 * The cluster-wide store, provided by the cluster module when `REDIS_URL` is
 * set; `LimitsModule` then uses it as `CONNECTION_COUNTER_STORE`. A shared
 * store's `tryAcquire` rejects when the shared state cannot be reached, and
 * `LimitsService` refuses the admission with 503 (fail closed).
 */
export const SHARED_COUNTER_STORE = Symbol('SHARED_COUNTER_STORE');
