import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/**
 * Coalesces the frames sent on one WebSocket during an event-loop turn into a
 * single write. A tunnel carries many small frames (a request head, a
 * response, an ack) for many streams; written one `writev` each, the system
 * calls cost more than the frames. `hold()` before a send corks the socket
 * until the loop's check phase (`setImmediate`), so every frame queued by the
 * I/O callbacks of that turn goes out together. `ws` corks around each frame
 * itself; corks nest, so the outer one decides.
 */
export class FrameBatcher {
  private holding = false;

  constructor(private readonly ws: WebSocket) {}

  /** Keeps what is sent from now until the end of this loop turn in one write. */
  hold(): void {
    if (this.holding) return;
    // The transport socket of a `ws` WebSocket (internal but stable across ws 8).
    const socket = (this.ws as unknown as { _socket?: Duplex | null })._socket;
    if (!socket || socket.destroyed) return;
    this.holding = true;
    socket.cork();
    setImmediate(() => {
      this.holding = false;
      socket.uncork();
    });
  }
}
