/** A registered tunnel as the registry knows it (no sockets: a shared store can hold it). */
export interface TunnelRecord {
  /** 16 lowercase hex characters, unique among live tunnels. */
  readonly subdomain: string;
  readonly user: string;
  readonly clientIp: string;
  /** Epoch ms. */
  readonly createdAt: number;
}

/** Outcome of claiming a subdomain: claimed, already taken (pick another), or the user is at the limit. */
export type ClaimOutcome = 'ok' | 'taken' | 'user_limit';

/**
 * Where live tunnels are registered: subdomain → tunnel, unique, with per-user
 * counts. The in-memory registry serves one replica; a shared one (Redis,
 * cluster mode: `SET NX` plus a per-user counter in one script, owner and
 * advertise URL kept beside the record) replaces it behind this interface.
 */
export interface TunnelRegistry {
  /**
   * Registers `record` if its subdomain is free and the user holds fewer than
   * `maxPerUser` tunnels — both checked and applied atomically, or nothing changes.
   */
  claim(record: TunnelRecord, maxPerUser: number): Promise<ClaimOutcome>;
  /** Removes a claimed subdomain (idempotent). */
  release(subdomain: string): Promise<void>;
  lookup(subdomain: string): Promise<TunnelRecord | null>;
  countForUser(user: string): Promise<number>;
  /** Live tunnels in the registry. */
  size(): Promise<number>;
}

/** Injection token of the `TunnelRegistry`. */
export const TUNNEL_REGISTRY = Symbol('TUNNEL_REGISTRY');
