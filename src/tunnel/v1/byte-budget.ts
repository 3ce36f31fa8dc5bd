/**
 * A shared allowance of bytes held in memory: `take` succeeds only while the
 * total stays within `limit`; what was taken is given back when released.
 */
export class ByteBudget {
  private used = 0;

  constructor(readonly limit: number) {}

  /** Bytes currently taken. */
  get inUse(): number {
    return this.used;
  }

  /** Takes `n` bytes if they fit; false (and nothing taken) otherwise. */
  take(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}
