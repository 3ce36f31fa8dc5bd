/**
 * After input EOF: closes once the far end has been quiet for `ms`, so its
 * answer to the last input still arrives (a WebSocket cannot half-close). Time
 * during which `holding()` is true does not count as quiet: then the client
 * itself keeps the far end from sending (a slow reader, a reattach).
 */
export class QuietClose {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly ms: number,
    private readonly holding: () => boolean,
    private readonly close: () => void,
  ) {}

  /** The input ended: wait for quiet. */
  start(): void {
    this.arm();
  }

  /** Something arrived: the quiet starts over, if it was being waited for. */
  heard(): void {
    if (this.timer) this.arm();
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (this.holding()) return this.arm();
      this.timer = null;
      this.close();
    }, this.ms);
  }
}
