import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { InboundStreamEvent, TunnelWire } from './stream-types.js';

/** A peer that never answers our FIN must not hold the socket forever. */
const LINGER_MS = 30_000;

/**
 * Writes that may wait in the socket's buffer before the wire is asked to stop delivering. The socket's own
 * mark counts bytes (16 KiB), and a client sending 1-byte frames would queue 16 384 writes (~170 bytes of heap
 * each, ~2.8 MiB per connection, and v1 never pauses while every connection stays under the mark) before
 * `write` says full. 256 of them cost ~43 KiB at most. Counted off the hot path: only while the socket holds a backlog.
 */
export const SOCKET_HIGH_WRITES = 256;

/**
 * Paused, `socket` stops reading at the next read instead of buffering reads until 16 KiB wait (16 384
 * Buffers, ~2.5 MiB of heap, for a peer sending 1-byte segments). Flowing, each read is emitted as it
 * comes whatever the mark. Accepted sockets take no readableHighWaterMark (a server's highWaterMark sets
 * the writable one too), so it is set on the readable state, a plain field in Node 20 to 24.
 * (Where a Node version has no such field, the socket keeps Node's mark: more memory, nothing broken.)
 */
export function stopReadingWhenPaused(socket: Readable): void {
  const readable = (socket as unknown as { _readableState?: { highWaterMark?: unknown } })._readableState;
  if (typeof readable?.highWaterMark === 'number') readable.highWaterMark = 0;
}

/**
 * One raw TCP connection on a tunnel's port, as a stream, with backpressure
 * both ways:
 * - socket → client: when the wire says wait (its WebSocket buffer is full),
 *   the socket is paused until the wire reports it writable again;
 * - client → socket: when the socket's write buffer is full, the wire is asked
 *   to stop delivering this stream's data until the socket drains.
 *
 * A requester's FIN is carried (v2: DATA with END) and its connection stays
 * open for the answer; it is dropped (and the stream reset) once it has waited
 * `halfClosedIdleMs` without a byte from the client. The kernel's read side is
 * done by then, so a requester that has gone altogether, behind a client that
 * never ends its side, would otherwise hold its connection slots for the
 * tunnel's life.
 */
export class TcpStream {
  private done = false;
  private paused = false;
  /** Writes made since the socket's buffer was last seen empty. */
  private queuedWrites = 0;
  private lingerTimer: NodeJS.Timeout | null = null;
  private halfClosedTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly id: string,
    private readonly socket: Socket,
    private readonly wire: TunnelWire,
    private readonly halfClosedIdleMs: number,
    private readonly onDone: (stream: TcpStream) => void,
  ) {}

  start(): void {
    const { socket, wire, id } = this;
    socket.setNoDelay(true);
    stopReadingWhenPaused(socket);
    wire.open(id, { kind: 'tcp' });
    socket.on('data', (chunk: Buffer) => {
      if (this.done) return;
      if (!wire.data(id, chunk) && !this.paused) {
        this.paused = true;
        socket.pause();
      }
    });
    socket.on('end', () => {
      if (this.done) return;
      wire.end(id);
      if (socket.writableEnded) return;
      this.halfClosedTimer = setTimeout(() => socket.destroy(), this.halfClosedIdleMs);
      this.halfClosedTimer.unref();
    });
    socket.on('drain', () => wire.resumeInbound(id));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.finish());
  }

  onEvent(ev: InboundStreamEvent): void {
    if (this.done) return;
    switch (ev.type) {
      case 'data':
        if (this.socket.writableEnded) return;
        this.halfClosedTimer?.refresh();
        if (this.socket.writableLength === 0) this.queuedWrites = 0;
        if (++this.queuedWrites < SOCKET_HIGH_WRITES) {
          if (!this.socket.write(ev.chunk)) this.wire.pauseInbound(this.id);
          return;
        }
        // That many writes wait (tiny ones): stop the wire until this one, and so all before it, is out.
        this.queuedWrites = 0;
        this.socket.write(ev.chunk, () => {
          if (!this.done) this.wire.resumeInbound(this.id);
        });
        this.wire.pauseInbound(this.id);
        return;
      case 'end':
        this.socket.end();
        return;
      case 'close':
        // Queued bytes reach the peer before the FIN; what the peer still sends is dropped.
        this.socket.end();
        this.lingerTimer = setTimeout(() => this.socket.destroy(), LINGER_MS);
        this.lingerTimer.unref();
        return;
      case 'reset':
      case 'malformed':
        this.socket.destroy();
        return;
      case 'head':
        return;
    }
  }

  writable(): void {
    if (this.paused && !this.done) {
      this.paused = false;
      this.socket.resume();
    }
  }

  /** The tunnel is gone: close at once. */
  tunnelGone(): void {
    this.socket.destroy();
    this.finish();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    if (this.halfClosedTimer) clearTimeout(this.halfClosedTimer);
    this.wire.release(this.id);
    this.onDone(this);
  }
}
