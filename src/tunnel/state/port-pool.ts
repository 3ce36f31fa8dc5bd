/**
 * The raw TCP port range `[TUNNEL_PORT_MIN, TUNNEL_PORT_MAX]`: which port
 * belongs to which tunnel. Binding is not the pool's business: the caller
 * claims a port, tries to bind it, and on failure releases it and claims from
 * the next one (a port held by another program is skipped, not fatal).
 * A shared pool (Redis, cluster mode: one port for one tunnel cluster-wide)
 * replaces the in-memory one behind this interface.
 */
export interface PortPool {
  readonly min: number;
  readonly max: number;
  /** Claims the lowest free port `>= from` (default `min`) for `owner` (a subdomain); `null` when none is free. */
  claim(owner: string, from?: number): Promise<number | null>;
  /** Frees `port` if `owner` holds it (idempotent). */
  release(port: number, owner: string): Promise<void>;
  /** The owner of a claimed port, or `null`. */
  ownerOf(port: number): Promise<string | null>;
  /** Claimed ports, ascending. */
  claimed(): Promise<number[]>;
  /**
   * A shared pool's report that `owner` lost `port`: `taken`, another claim
   * holds it (its own lapsed while the pool was unreachable); `unrenewed`,
   * the claim could not be renewed for so long that it may lapse, so it was
   * given up first. Absent where that cannot happen.
   */
  onLost?(listener: (port: number, owner: string, why: PortLossCause) => void): void;
}

/** Why a shared pool took a raw port back from its tunnel (see `PortPool.onLost`). */
export type PortLossCause = 'taken' | 'unrenewed';

/** Injection token of the `PortPool`. */
export const PORT_POOL = Symbol('PORT_POOL');
