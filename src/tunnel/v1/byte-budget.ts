/**
 * A shared allowance of bytes held in memory: `take` succeeds only while the
 * total stays within `limit` and what one key (a requester's IP) holds stays
 * within `perKeyLimit`; what was taken is given back when released.
 */
export class ByteBudget {
  private used = 0;
  private readonly byKey = new Map<string, number>();

  constructor(
    readonly limit: number,
    readonly perKeyLimit: number = limit,
  ) {}

  /** Bytes currently taken. */
  get inUse(): number {
    return this.used;
  }

  /** Takes `n` bytes for `key` if they fit; false (and nothing taken) otherwise. */
  take(n: number, key: string): boolean {
    const held = this.byKey.get(key) ?? 0;
    if (this.used + n > this.limit || held + n > this.perKeyLimit) return false;
    this.used += n;
    this.byKey.set(key, held + n);
    return true;
  }

  give(n: number, key: string): void {
    if (n <= 0) return;
    const held = this.byKey.get(key) ?? 0;
    const given = Math.min(n, held);
    this.used -= given;
    if (held - given > 0) this.byKey.set(key, held - given);
    else this.byKey.delete(key);
  }
}
