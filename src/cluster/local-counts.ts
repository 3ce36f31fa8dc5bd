/**
 * This replica's own connection counts: the source of truth for its share of
 * the cluster-wide counts. Admissions still waiting for Redis are counted here
 * too (`begin`), so a heartbeat sent meanwhile re-publishes them; one that
 * does not take its slot is `drop`ped when the answer arrives.
 */
export class LocalCounts {
  private readonly perIp = new Map<string, number>();
  private readonly perUser = new Map<string, number>();

  /** Counts an admission about to be sent to Redis. */
  begin(ip: string, user: string): void {
    bump(this.perIp, ip, 1);
    bump(this.perUser, user, 1);
  }

  /** Drops an admission Redis refused or could not answer, or a released slot. */
  drop(ip: string, user: string): void {
    bump(this.perIp, ip, -1);
    bump(this.perUser, user, -1);
  }

  /** Entries for the heartbeat script: `[n, k1, v1, …]` for IPs, then the same for users. */
  heartbeatArgs(): string[] {
    return [...flatten(this.perIp), ...flatten(this.perUser)];
  }

  snapshot(): { perIp: Record<string, number>; perUser: Record<string, number> } {
    return { perIp: Object.fromEntries(this.perIp), perUser: Object.fromEntries(this.perUser) };
  }
}

function bump(map: Map<string, number>, key: string, by: number): void {
  const n = (map.get(key) ?? 0) + by;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
}

function flatten(map: Map<string, number>): string[] {
  const out = [String(map.size)];
  for (const [k, v] of map) out.push(k, String(v));
  return out;
}
