import { WebSocket } from 'ws';
import { FrameBatcher } from './frame-batcher.js';

const BINARY = { binary: true } as const;
const TEXT = { binary: false } as const;

/**
 * Every MARK_EVERY-th frame sent while the buffer is below the mark carries a
 * callback that counts it out again: MAX_MARKS of them still unwritten means
 * about MAX_MARKS × MARK_EVERY frames (4096) wait in the send buffer, and the
 * sender is congested as if the buffer were past its mark. `bufferedAmount`
 * counts bytes, but a queued frame costs a few hundred bytes of heap whatever
 * its size: 1-byte DATA frames (9 bytes) filled a 1 MiB mark with ~116 000
 * frames, tens of MiB. Bulk frames are large and never get near the count.
 */
const MARK_EVERY = 256;
const MAX_MARKS = 16;

/**
 * Sends tunnel frames on a WebSocket, one message each (a string as a text
 * message, bytes as a binary one), small ones of a loop turn batched into one
 * write (`FrameBatcher`). Past `highWater` bytes in the socket's send buffer, or
 * about 4096 frames (tiny ones), it is not `ready` (flow-controlled frames should wait; control frames still go)
 * and every frame carries a flush callback until the buffer drains below the
 * mark again; then `onDrained` runs. Both protocol versions send through it, at
 * the proxy and in the reference client.
 */
export class FrameSender {
  private congested = false;
  /** Frames sent, modulo MARK_EVERY; marked frames not yet written. */
  private sent = 0;
  private marks = 0;
  private readonly batcher: FrameBatcher;
  private readonly marked = (): void => {
    this.marks--;
  };
  private readonly afterFlush = (): void => {
    if (!this.congested || this.ws.bufferedAmount >= this.highWater || this.marks >= MAX_MARKS) return;
    this.congested = false;
    this.onDrained();
  };

  constructor(
    private readonly ws: WebSocket,
    private readonly highWater: number,
    private readonly onDrained: () => void,
  ) {
    this.batcher = new FrameBatcher(ws);
  }

  /** False while the send buffer is past the high-water mark. */
  get ready(): boolean {
    return !this.congested;
  }

  /** Sends `frame` if the WebSocket is open (dropped otherwise: the tunnel is ending). */
  send(frame: Uint8Array | string): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (!this.congested && (this.ws.bufferedAmount + frame.length >= this.highWater || this.marks >= MAX_MARKS)) this.congested = true;
    this.batcher.before(frame.length);
    const options = typeof frame === 'string' ? TEXT : BINARY;
    if (this.congested) {
      this.ws.send(frame, options, this.afterFlush);
    } else if (++this.sent < MARK_EVERY) {
      this.ws.send(frame, options);
    } else {
      this.sent = 0;
      this.marks++;
      this.ws.send(frame, options, this.marked);
    }
  }
}
