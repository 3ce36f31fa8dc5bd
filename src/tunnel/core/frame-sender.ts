import { WebSocket } from 'ws';
import { FrameBatcher } from './frame-batcher.js';

const BINARY = { binary: true } as const;
const TEXT = { binary: false } as const;

/**
 * Sends tunnel frames on a WebSocket, one message each (a string as a text
 * message, bytes as a binary one), small ones of a loop turn batched into one
 * write (`FrameBatcher`). Past `highWater` bytes in the socket's send buffer it
 * is not `ready` (flow-controlled frames should wait; control frames still go)
 * and every frame carries a flush callback until the buffer drains below the
 * mark again; then `onDrained` runs. Both protocol versions send through it, at
 * the proxy and in the reference client.
 */
export class FrameSender {
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

  /** Sends `frame` if the WebSocket is open (dropped otherwise: the tunnel is ending). */
  send(frame: Uint8Array | string): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (!this.congested && this.ws.bufferedAmount + frame.length >= this.highWater) this.congested = true;
    this.batcher.before(frame.length);
    const options = typeof frame === 'string' ? TEXT : BINARY;
    if (this.congested) this.ws.send(frame, options, this.afterFlush);
    else this.ws.send(frame, options);
  }
}
