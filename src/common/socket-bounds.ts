import type { Readable, Writable } from 'node:stream';
import { unpinned } from './own-copy.js';

/**
 * Writes that may wait in a socket's buffer before its writer is asked to stop. The socket's own mark
 * counts bytes (16 KiB), and a peer sending 1-byte frames would queue 16 384 writes (~170 bytes of heap
 * each, ~2.8 MiB per connection) before `write` says full. 256 of them cost ~43 KiB at most. Counted off
 * the hot path: only while the socket holds a backlog.
 */
export const SOCKET_HIGH_WRITES = 256;

/**
 * Sets `socket`'s readable mark: how much a paused socket reads ahead before it stops reading. 0 (what every
 * caller here sets) makes a paused socket stop at its next read instead of buffering reads until 16 KiB wait
 * (16 384 Buffers, ~2.5 MiB of heap, for a peer sending 1-byte segments); flowing, each read is emitted as it
 * comes whatever the mark. A socket handed on to code that expects Node's mark gets it back the same way
 * (its `readableHighWaterMark` from before). Accepted sockets take no readableHighWaterMark (a server's
 * highWaterMark sets the writable one too), so it is set on the readable state, a plain field in Node 20 to 24.
 * (Where a Node version has no such field, the socket keeps Node's mark: more memory, nothing broken.)
 */
export function setReadableMark(socket: Readable, mark: number): void {
  const readable = (socket as unknown as { _readableState?: { highWaterMark?: unknown } })._readableState;
  if (typeof readable?.highWaterMark === 'number') readable.highWaterMark = mark;
}

/**
 * A queued view pins at most this many times its bytes. The queue's high-water mark (16 KiB) then holds at most
 * 128 KiB of reads, and a message of 8 KiB or more in a 64 KiB read (a bulk upload's) is written as it is: copying
 * it would cost the data path a copy of each such message whenever the target is behind.
 */
const QUEUED_PIN_RATIO = 8;

/**
 * `chunk` as it is to be written to `socket`: itself when the socket takes it at once, else (a write is pending, so
 * it waits in the socket's queue) `unpinned`. A queued view holds the whole buffer it is part of, for a 1-byte
 * WebSocket message the socket read it came in (up to 64 KiB), while the socket's high-water mark counts its bytes.
 */
export function queueable<T extends Uint8Array>(socket: Writable, chunk: T): T | Buffer {
  return socket.writableLength === 0 ? chunk : unpinned(chunk, QUEUED_PIN_RATIO);
}

/**
 * Writes to a socket with a bound on its queued writes as well as its bytes: `write` returns false when
 * the writer must wait (16 KiB, or SOCKET_HIGH_WRITES writes waiting), and `resume` is called once it may
 * go on: at the socket's 'drain', or, when the count was reached, once that write (and so every write
 * before it) is out. A write that waits is `queueable`: the count bounds writes, not the reads they are
 * views of.
 */
export class BoundedWriter {
  /** Writes made since the socket's buffer was last seen empty. */
  private queued = 0;
  private awaitingDrain = false;
  private readonly drained = (): void => {
    this.awaitingDrain = false;
    this.resume();
  };
  private readonly written = (): void => this.resume();

  constructor(
    private readonly socket: Writable,
    private readonly resume: () => void,
  ) {}

  write(data: Uint8Array): boolean {
    const socket = this.socket;
    if (socket.writableLength === 0) this.queued = 0;
    const chunk = queueable(socket, data);
    if (++this.queued < SOCKET_HIGH_WRITES) {
      if (socket.write(chunk)) return true;
      if (!this.awaitingDrain) {
        this.awaitingDrain = true;
        socket.once('drain', this.drained);
      }
      return false;
    }
    // That many writes wait (tiny ones): go on once this one, and so all before it, is out.
    this.queued = 0;
    socket.write(chunk, this.written);
    return false;
  }
}
