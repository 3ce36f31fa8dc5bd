import { ChurnMap } from '../../common/churn-map.js';

/**
 * Concurrent requests per source IP, capped; zero entries are deleted. Addresses
 * are counted under `keyOf` (`ipLimitKey`: an IPv6 source per prefix).
 */
export class InFlightCounter {
  private readonly counts = new ChurnMap<string, number>();

  constructor(
    private readonly max: number,
    private readonly keyOf: (ip: string) => string,
  ) {}

  tryAcquire(ip: string): boolean {
    const key = this.keyOf(ip);
    const n = this.counts.get(key) ?? 0;
    if (n >= this.max) return false;
    this.counts.set(key, n + 1);
    return true;
  }

  release(ip: string): void {
    const key = this.keyOf(ip);
    const n = this.counts.get(key);
    if (n === undefined) return;
    if (n <= 1) this.counts.delete(key);
    else this.counts.set(key, n - 1);
  }

  get(ip: string): number {
    return this.counts.get(this.keyOf(ip)) ?? 0;
  }
}
