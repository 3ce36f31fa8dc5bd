/**
 * The requester's half of a streamed request body: `onStall` runs when no
 * body bytes arrive for `ms` while the proxy is reading. Time the proxy holds
 * the body back itself (the tunnel's backpressure) is not a stall, and a body
 * that keeps arriving may take as long as it needs (like nginx's
 * `client_body_timeout`, between two reads, not for the whole body).
 */
export class BodyStallTimer {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly ms: number,
    private readonly onStall: () => void,
  ) {}

  /** The proxy is reading (or just read some bytes): the requester has `ms` from now. */
  reading(): void {
    if (this.timer) {
      this.timer.refresh();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      this.onStall();
    }, this.ms);
    this.timer.unref();
  }

  /** The proxy stopped reading (backpressure), or the body is over. */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
