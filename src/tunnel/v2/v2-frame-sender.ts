import { WebSocket } from 'ws';
import { FrameBatcher } from '../core/frame-batcher.js';

const BINARY = { binary: true } as const;

/**
 * Sends v2 frames on a WebSocket, one binary message each, small ones of a
 * loop turn batched into one write (`FrameBatcher`). Past `highWater` bytes in
 * the socket's send buffer it is not `ready` (flow-controlled frames should
 * wait; control frames still go) and every frame carries a flush callback
 * until the buffer drains below the mark again; then `onDrained` runs.
 */
export class V2FrameSender {
  private congested = false;
  private readonly batcher: FrameBatcher;
  private readonly afterFlush = (): void => {
    if (!this.congested || this.ws.bufferedAmount >= this.highWater) return;
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

  send(frame: Uint8Array): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (!this.congested && this.ws.bufferedAmount + frame.length >= this.highWater) this.congested = true;
    this.batcher.before(frame.length);
    if (this.congested) this.ws.send(frame, BINARY, this.afterFlush);
    else this.ws.send(frame, BINARY);
  }
}
