import type { AcquireOutcome, ConnectionCounterStore } from './connection-counter.store.js';

/** Single-replica counters in two Maps; entries at zero are deleted so the maps stay small. */
export class InMemoryCounterStore implements ConnectionCounterStore {
  private readonly perIp = new Map<string, number>();
  private readonly perUser = new Map<string, number>();

  tryAcquire(ip: string, user: string, maxPerIp: number, maxPerUser: number): Promise<AcquireOutcome> {
    const ipCount = this.perIp.get(ip) ?? 0;
    if (ipCount >= maxPerIp) return Promise.resolve('ip');
    const userCount = this.perUser.get(user) ?? 0;
    if (userCount >= maxPerUser) return Promise.resolve('user');
    this.perIp.set(ip, ipCount + 1);
    this.perUser.set(user, userCount + 1);
    return Promise.resolve('ok');
  }

  release(ip: string, user: string): Promise<void> {
    decrement(this.perIp, ip);
    decrement(this.perUser, user);
    return Promise.resolve();
  }

  snapshot(): Promise<{ perIp: Record<string, number>; perUser: Record<string, number> }> {
    return Promise.resolve({ perIp: Object.fromEntries(this.perIp), perUser: Object.fromEntries(this.perUser) });
  }
}

function decrement(map: Map<string, number>, key: string): void {
  const n = map.get(key);
  if (n === undefined) return;
  if (n <= 1) map.delete(key);
  else map.set(key, n - 1);
}
