import type { ClaimOutcome, TunnelRecord, TunnelRegistry } from './tunnel-registry.js';

/** Single-replica registry: two Maps, changed synchronously, so every claim is atomic. */
export class InMemoryTunnelRegistry implements TunnelRegistry {
  private readonly bySubdomain = new Map<string, TunnelRecord>();
  private readonly perUser = new Map<string, number>();

  claim(record: TunnelRecord, maxPerUser: number): Promise<ClaimOutcome> {
    if (this.bySubdomain.has(record.subdomain)) return Promise.resolve('taken');
    const count = this.perUser.get(record.user) ?? 0;
    if (count >= maxPerUser) return Promise.resolve('user_limit');
    this.bySubdomain.set(record.subdomain, record);
    this.perUser.set(record.user, count + 1);
    return Promise.resolve('ok');
  }

  release(subdomain: string): Promise<void> {
    const record = this.bySubdomain.get(subdomain);
    if (record) {
      this.bySubdomain.delete(subdomain);
      const n = this.perUser.get(record.user) ?? 0;
      if (n <= 1) this.perUser.delete(record.user);
      else this.perUser.set(record.user, n - 1);
    }
    return Promise.resolve();
  }

  lookup(subdomain: string): Promise<TunnelRecord | null> {
    return Promise.resolve(this.bySubdomain.get(subdomain) ?? null);
  }

  countForUser(user: string): Promise<number> {
    return Promise.resolve(this.perUser.get(user) ?? 0);
  }

  size(): Promise<number> {
    return Promise.resolve(this.bySubdomain.size);
  }
}
