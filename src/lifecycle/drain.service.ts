import { BeforeApplicationShutdown, Inject, Injectable, Logger } from '@nestjs/common';
import { ChurnSet } from '../common/churn-map.js';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';

/** Something long-lived that a shutdown must end: a relay, a tunnel. */
export interface Drainable {
  /** Ends it now with a close frame of `code`. */
  shutdown(code: number, reason: string): void;
  /**
   * Ends it at once, once `shutdown`'s close frame has had its moment: a peer
   * that never answers it would otherwise outlive the process, and its end
   * (the `relay_end` line) would never be logged.
   */
  terminate?(): void;
  /**
   * True once nothing is left to deliver either way and it only waits on its
   * peer (a relay whose client has closed, waiting for its target's FIN): when
   * every live connection is so, the drain ends them without waiting out the
   * timeout.
   */
  settled?(): boolean;
}

/** How often a drain checks whether every live connection has settled. */
const SETTLED_CHECK_MS = 200;

/**
 * Graceful draining. From the first moment of a shutdown, readiness answers 503
 * and new upgrades are refused; live connections run on until they end or
 * `SHUTDOWN_TIMEOUT_MS` passes, then close with 1001. This runs in
 * `beforeApplicationShutdown` because by the adapter's `dispose` Nest has already
 * terminated every WebSocket without a close frame.
 */
@Injectable()
export class DrainService implements BeforeApplicationShutdown {
  private readonly logger = new Logger(DrainService.name);
  private readonly live = new ChurnSet<Drainable>();
  private drainingSince: number | null = null;
  private idle: (() => void) | null = null;
  private readonly afterDrain: (() => void)[] = [];
  private readonly atStart: (() => void)[] = [];

  constructor(@Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType) {}

  get draining(): boolean {
    return this.drainingSince !== null;
  }

  get liveCount(): number {
    return this.live.size;
  }

  /** Tracks a live connection until the returned function is called. */
  track(item: Drainable): () => void {
    const handle = this.live.add(item);
    let tracked = true;
    return () => {
      // Once only: after handles wrap, the same handle may belong to another connection.
      if (!tracked) return;
      tracked = false;
      this.live.delete(handle);
      if (this.live.size === 0) this.idle?.();
    };
  }

  /**
   * Runs `cb` once the drain is over (live connections ended or closed), still
   * before Nest disposes the server: for connections that serve the drained
   * ones (replica-to-replica channels) and must outlive them, but not the server.
   */
  onDrained(cb: () => void): void {
    this.afterDrain.push(cb);
  }

  /** Runs `cb` when draining starts (at once if it has): for work that must not outlast its start, such as admissions in flight. */
  onStart(cb: () => void): void {
    if (this.draining) cb();
    else this.atStart.push(cb);
  }

  /** Marks the service as draining (readiness 503, upgrades 503) without waiting. */
  startDraining(): void {
    if (this.drainingSince === null) {
      this.drainingSince = Date.now();
      this.logger.log(`draining: ${this.live.size} live connections, timeout ${this.config.shutdownTimeoutMs} ms`);
      for (const cb of this.atStart.splice(0)) cb();
    }
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.startDraining();
    await this.waitForLive();
    for (const cb of this.afterDrain.splice(0)) cb();
  }

  private async waitForLive(): Promise<void> {
    if (this.live.size > 0) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          clearInterval(check);
          resolve();
        };
        const timer = setTimeout(done, this.config.shutdownTimeoutMs);
        timer.unref();
        const check = setInterval(() => this.allSettled() && done(), SETTLED_CHECK_MS);
        check.unref();
        this.idle = done;
      });
    }
    if (this.live.size > 0) {
      if (this.allSettled()) this.logger.log(`drain: ending ${this.live.size} connections that only wait for their peers`);
      else this.logger.warn(`shutdown timeout: closing ${this.live.size} live connections with 1001`);
      for (const item of this.live.values()) item.shutdown(1001, 'server shutting down');
      // Give the close frames a moment to flush before the server is disposed.
      await this.idleWithin(1000);
      if (this.live.size > 0) {
        for (const item of this.live.values()) item.terminate?.();
        await this.idleWithin(500);
      }
    }
  }

  private allSettled(): boolean {
    return this.live.size > 0 && this.live.values().every((item) => item.settled?.() === true);
  }

  private idleWithin(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.idle = () => {
        clearTimeout(timer);
        resolve();
      };
      if (this.live.size === 0) resolve();
    });
  }
}
