/**
 * How long a v1 tunnel's WebSocket may stay unread because a local reader
 * does not read (v1 has one reader for all streams). A bucket of `capacityMs`,
 * refilled at one millisecond per millisecond: a pause that ends because its
 * reader caught up (a slow reader) costs nothing; a stall that ends in a reset
 * (a reader that did not read for the whole allowance) is charged its length.
 * So a stuck connection gets the whole bucket, and stuck connections that
 * follow one another (a visitor opening connection after connection and
 * reading none) share what has refilled since, instead of `capacityMs` each.
 */
export class StallBudget {
  private left: number;
  private at: number;

  constructor(
    private readonly capacityMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.left = capacityMs;
    this.at = now();
  }

  /** How long a pause that starts now may last before its connection is reset. */
  remainingMs(): number {
    this.refill();
    return this.left;
  }

  /** A stall of `ms` ended in a reset. */
  charge(ms: number): void {
    this.refill();
    this.left = Math.max(0, this.left - ms);
  }

  private refill(): void {
    const t = this.now();
    this.left = Math.min(this.capacityMs, this.left + (t - this.at));
    this.at = t;
  }
}
