import { ChurnMap } from '../../common/churn-map.js';

/** Concurrent requests per key (source IP), capped; zero entries are deleted. */
export class InFlightCounter {
  private readonly counts = new ChurnMap<string, number>();

  constructor(private readonly max: number) {}

  tryAcquire(key: string): boolean {
    const n = this.counts.get(key) ?? 0;
    if (n >= this.max) return false;
    this.counts.set(key, n + 1);
    return true;
  }

  release(key: string): void {
    const n = this.counts.get(key);
    if (n === undefined) return;
    if (n <= 1) this.counts.delete(key);
    else this.counts.set(key, n - 1);
  }

  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }
}
