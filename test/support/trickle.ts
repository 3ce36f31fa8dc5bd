/**
 * A client that trickles a WebSocket frame into the proxy a byte per write,
 * and the watch on the accepted WebSocket's frame receiver that tells how
 * many Buffers it held for it (`coalesceTrickledFrames` bounds them).
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import type { WebSocket, WebSocketServer } from 'ws';
import { TRICKLE_RUN_CHUNKS } from '../../src/upgrade/coalesce-trickle.js';
import { Opcode, frameHeader, maskPayload } from './ws-frames.js';

/** Payload bytes a trickle sends: 16 runs, enough reads for the bound to mean something even when some writes share a read. */
export const TRICKLE_BYTES = 16 * TRICKLE_RUN_CHUNKS;

/** The next WebSocket `server` accepts, once its owner's callback has set it up. */
export function nextAccepted(server: WebSocketServer): Promise<WebSocket> {
  return new Promise((resolve) => {
    const handleUpgrade = server.handleUpgrade;
    server.handleUpgrade = function (req, socket, head, cb) {
      server.handleUpgrade = handleUpgrade;
      handleUpgrade.call(this, req, socket, head, (ws, r) => {
        cb(ws, r);
        resolve(ws);
      });
    };
  });
}

export interface Trickled {
  /** Socket reads the proxy made of the frame. */
  readonly reads: number;
  /** The most Buffers its receiver held for the frame at once. */
  readonly maxHeld: number;
}

/**
 * Writes a frame declaring `declared` bytes and then `payload` a byte per
 * write, one per event-loop turn, watching the receiver of `ws` (the accepted
 * end of `socket`).
 */
export async function trickleFrame(socket: Socket, ws: WebSocket, payload: Buffer, declared = payload.length): Promise<Trickled> {
  const internals = ws as unknown as { _socket: Socket; _receiver: { _buffers: Buffer[] } };
  let reads = 0;
  let maxHeld = 0;
  const watch = (): void => {
    reads++;
    maxHeld = Math.max(maxHeld, internals._receiver._buffers.length);
  };
  internals._socket.on('data', watch);
  socket.write(frameHeader({ opcode: Opcode.BINARY, length: declared, lengthBits: 64 }));
  const masked = maskPayload(payload);
  for (let i = 0; i < masked.length; i++) {
    socket.write(masked.subarray(i, i + 1));
    await new Promise((r) => setImmediate(r));
  }
  internals._socket.off('data', watch);
  return { reads, maxHeld };
}

/**
 * Asserts that the frame came in enough reads for the bound to mean something,
 * and that the receiver held at most a run of them plus one merged Buffer per
 * run: without coalescing, it holds one per read.
 */
export function assertHeldBounded(t: Trickled, what: string): void {
  assert.ok(t.reads > 3 * TRICKLE_RUN_CHUNKS, `the frame came in ${t.reads} reads`);
  const bound = TRICKLE_RUN_CHUNKS + Math.ceil(t.reads / TRICKLE_RUN_CHUNKS) + 1;
  assert.ok(t.maxHeld <= bound, `${what} held ${t.maxHeld} Buffers for ${t.reads} reads of one frame`);
}
