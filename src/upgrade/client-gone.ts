import type { Duplex } from 'node:stream';

/**
 * The part of `AbortSignal` that admission uses to notice a client that went
 * away. `AbortSignal` satisfies it (tests, callers outside the upgrade path).
 */
export interface GoneSignal {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/**
 * A `GoneSignal` read straight from the client's socket: aborted once the
 * socket is destroyed, listeners on its `close`. An `AbortController` per
 * upgrade, and the listeners to attach and detach it, cost several
 * microseconds of every setup for an event that almost never fires.
 */
export class SocketGoneSignal implements GoneSignal {
  constructor(private readonly socket: Duplex) {}

  get aborted(): boolean {
    return this.socket.destroyed;
  }

  addEventListener(_type: 'abort', listener: () => void): void {
    this.socket.once('close', listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    this.socket.off('close', listener);
  }
}
