/**
 * Lets a repeated warning through once per interval per key, and counts the
 * rest, so a failure that every request meets (a dead replica, for as long as
 * its record lives) costs a line per interval instead of a line per request.
 */
export class LogThrottle {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  /**
   * @param intervalMs shortest time between two lines for one key
   * @param maxKeys keys remembered; all are forgotten when more arrive (the bound matters more than a few extra lines)
   * @param now the clock (tests)
   */
  constructor(
    private readonly intervalMs = 10_000,
    private readonly maxKeys = 256,
    private readonly now: () => number = Date.now,
  ) {}

  /** Null to stay quiet; otherwise log now, mentioning how many were suppressed since the last line. */
  take(key: string): number | null {
    const t = this.now();
    const entry = this.last.get(key);
    if (entry && t - entry.at < this.intervalMs) {
      entry.suppressed++;
      return null;
    }
    if (!entry && this.last.size >= this.maxKeys) this.last.clear();
    this.last.set(key, { at: t, suppressed: 0 });
    return entry?.suppressed ?? 0;
  }
}
