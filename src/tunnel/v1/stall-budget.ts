/**
 * How long a v1 tunnel's WebSocket may stay unread because a local reader
 * does not read (v1 has one reader for all streams). A bucket of `capacityMs`:
 * drained while the WebSocket is paused, refilled at the same rate while it is
 * read. One stalled connection gets the whole bucket; stalls that follow one
 * another (a visitor opening connection after connection and reading none)
 * share what is left, so together they hold the tunnel for at most about half
 * the time instead of `capacityMs` each.
 */
export class StallBudget {
  private left: number;
  private at: number;
  private pausedAt: number | null = null;

  constructor(
    private readonly capacityMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.left = capacityMs;
    this.at = now();
  }

  /** The WebSocket stops being read. */
  paused(): void {
    if (this.pausedAt !== null) return;
    const t = this.now();
    this.left = Math.min(this.capacityMs, this.left + (t - this.at));
    this.at = t;
    this.pausedAt = t;
  }

  /** The WebSocket is read again. */
  resumed(): void {
    if (this.pausedAt === null) return;
    const t = this.now();
    this.left = Math.max(0, this.left - (t - this.pausedAt));
    this.at = t;
    this.pausedAt = null;
  }

  /** How much longer the pause that is on may last (the whole refilled bucket when none is on). */
  remainingMs(): number {
    const t = this.now();
    if (this.pausedAt === null) return Math.min(this.capacityMs, this.left + (t - this.at));
    return Math.max(0, this.left - (t - this.pausedAt));
  }
}
