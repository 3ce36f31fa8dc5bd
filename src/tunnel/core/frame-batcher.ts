import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/** Frames at least this large go out at once: batching only pays for small ones. */
const BATCH_BELOW_BYTES = 16 * 1024;

/**
 * Coalesces the small frames sent on one WebSocket during an event-loop turn
 * into a single write. A tunnel carries many small frames (a request head, a
 * response, an ack) for many streams; written one `writev` each, the system
 * calls cost more than the frames. Before a small frame the socket is corked
 * until the loop's check phase (`setImmediate`), so every small frame queued
 * by the I/O callbacks of that turn goes out together; a large frame flushes
 * what is queued and goes out at once (bulk data gains nothing from waiting).
 * `ws` corks around each frame itself; corks nest, so the outer one decides.
 */
export class FrameBatcher {
  private socket: Duplex | null = null;
  private readonly release = (): void => {
    const socket = this.socket;
    if (!socket) return;
    this.socket = null;
    socket.uncork();
  };

  constructor(private readonly ws: WebSocket) {}

  /** Call before sending a frame of `size` bytes. */
  before(size: number): void {
    if (size >= BATCH_BELOW_BYTES) {
      this.release();
      return;
    }
    if (this.socket) return;
    // The transport socket of a `ws` WebSocket (internal but stable across ws 8).
    const socket = (this.ws as unknown as { _socket?: Duplex | null })._socket;
    if (!socket || socket.destroyed) return;
    this.socket = socket;
    socket.cork();
    setImmediate(this.release);
  }
}
