import type { Socket } from 'node:net';
import { resetSocket } from '../../common/reset-socket.js';
import { BoundedWriter, setReadableMark } from '../../common/socket-bounds.js';
import type { InboundStreamEvent, TunnelWire } from './stream-types.js';

/** A peer that never answers our FIN, or never takes what comes before it, must not hold the socket forever. */
const LINGER_MS = 30_000;

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
 *
 * The requester gets a FIN only after the whole of what the client sent it:
 * the client ended its side (`end`, `close`) and every byte went out. A
 * stream cut short (a reset or a malformed answer from the client, the tunnel
 * gone without the client ending this stream, a requester that does not take
 * the bytes or close within LINGER_MS, a half-closed wait given up) ends with
 * a TCP reset instead (see `resetSocket`): a FIN would pass the prefix it got
 * for the whole stream.
 */
export class TcpStream {
  private done = false;
  private paused = false;
  /** Writes to the requester: the wire is stopped while they wait (see BoundedWriter). */
  private readonly writer: BoundedWriter;
  private lingerTimer: NodeJS.Timeout | null = null;
  private halfClosedTimer: NodeJS.Timeout | null = null;
  /** The connection closed cleanly while its last bytes still wait for the client's credit (see `closed`). */
  private flushTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly id: string,
    private readonly socket: Socket,
    private readonly wire: TunnelWire,
    private readonly halfClosedIdleMs: number,
    private readonly onDone: (stream: TcpStream) => void,
  ) {
    this.writer = new BoundedWriter(socket, () => {
      if (!this.done) wire.resumeInbound(id);
    });
  }

  start(): void {
    const { socket, wire, id } = this;
    socket.setNoDelay(true);
    setReadableMark(socket, 0);
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
      // The client never ended its side: what the requester got is not the whole stream.
      this.halfClosedTimer = setTimeout(() => resetSocket(socket), this.halfClosedIdleMs);
      this.halfClosedTimer.unref();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', (hadError: boolean) => this.closed(hadError));
  }

  /**
   * The connection closed. After a clean close (the requester's FIN read, ours sent) what it sent last
   * may still wait in the wire for the client's credit: the stream is released once that is out (or the
   * client resets it, or LINGER_MS pass), not before, or the release would reset the stream and drop it.
   */
  private closed(hadError: boolean): void {
    if (this.done || this.flushTimer) return;
    if (!hadError && this.wire.whenSent?.(this.id, () => this.finish())) {
      this.flushTimer = setTimeout(() => this.finish(), LINGER_MS);
      this.flushTimer.unref();
      return;
    }
    this.finish();
  }

  onEvent(ev: InboundStreamEvent): void {
    if (this.done) return;
    switch (ev.type) {
      case 'data':
        if (this.socket.writableEnded) return;
        this.halfClosedTimer?.refresh();
        if (!this.writer.write(ev.chunk)) this.wire.pauseInbound(this.id);
        return;
      case 'end':
        this.socket.end();
        // The stream is whole: the half-closed wait (for a client that never ends) is over, and resetting on
        // it now would cut the tail the requester is still taking.
        if (this.halfClosedTimer) clearTimeout(this.halfClosedTimer);
        this.halfClosedTimer = null;
        if (!this.socket.writableFinished) this.lingerUntilFlushed();
        return;
      case 'close':
        // Queued bytes reach the peer before the FIN; what the peer still sends is dropped.
        this.socket.end();
        this.armLinger();
        return;
      case 'reset':
      case 'malformed':
        resetSocket(this.socket);
        if (this.flushTimer) this.finish();
        return;
      case 'head':
        return;
    }
  }

  /**
   * After the client's END, what is queued goes out before the FIN: a requester that does not take it within
   * LINGER_MS (it stopped reading, whether its own side is still open or closed) is dropped, as after `close`.
   * Once it is out the requester may go on sending (a half-close), for as long as it likes.
   */
  private lingerUntilFlushed(): void {
    const timer = this.armLinger();
    this.socket.once('finish', () => {
      if (this.lingerTimer !== timer) return;
      clearTimeout(timer);
      this.lingerTimer = null;
    });
  }

  private armLinger(): NodeJS.Timeout {
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    this.lingerTimer = setTimeout(() => resetSocket(this.socket), LINGER_MS);
    this.lingerTimer.unref();
    return this.lingerTimer;
  }

  writable(): void {
    if (this.paused && !this.done) {
      this.paused = false;
      this.socket.resume();
    }
  }

  /**
   * The tunnel is gone. A stream whose client had ended its side (`end`, `close`) is complete: once its FIN
   * is out the socket is dropped (as before: what the requester still sends reaches nobody, and the kernel
   * answers it with a reset); while bytes are still queued they go out before the FIN, the requester read (and
   * dropped) to its own FIN, as after `close`, within LINGER_MS, then reset. Any other stream is cut short:
   * reset at once.
   */
  tunnelGone(): void {
    const { socket } = this;
    if (socket.writableFinished) {
      socket.destroy();
    } else if (socket.writableEnded && !socket.destroyed) {
      // finish() below clears the stream's timers: this one runs on, for the socket alone.
      if (this.lingerTimer) clearTimeout(this.lingerTimer);
      this.lingerTimer = null;
      const linger = setTimeout(() => resetSocket(socket), LINGER_MS);
      linger.unref();
      socket.once('close', () => clearTimeout(linger));
      socket.resume();
    } else {
      resetSocket(socket);
    }
    this.finish();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    if (this.halfClosedTimer) clearTimeout(this.halfClosedTimer);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.wire.release(this.id);
    this.onDone(this);
  }
}
