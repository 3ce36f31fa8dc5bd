import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { Opcode, ZERO_MASK_KEY, clientFrame } from './ws-frames.js';

/** Flood ping `i`: payload `p<i>` padded with dots to 125 bytes, masked under a zero key (the proxy's `ws` then skips unmasking it). */
const floodPing = (i: number): Buffer => clientFrame(Opcode.PING, `p${i}`.padEnd(125, '.'), { maskKey: ZERO_MASK_KEY });

/** Bytes of one flood ping on the wire: a masked frame with 125 bytes of payload. */
export const FLOOD_PING_BYTES = floodPing(0).length;

/** A client under test: its raw socket, and the pongs it has got (payloads `p<i>`). */
export interface PingFlood {
  readonly raw: Socket;
  readonly pongs: string[];
}

/**
 * Pauses the client's socket (it reads nothing from then on) and writes
 * `count` pings of 125 bytes (payload `p<i>`, padded with dots) straight to it;
 * resolves once all are handed to the kernel. Resume `raw` to read the pongs.
 */
export async function floodPings(ws: WebSocket, count: number): Promise<PingFlood> {
  const pongs: string[] = [];
  ws.on('pong', (d: Buffer) => pongs.push(d.toString().replace(/\.+$/, '')));
  const raw = (ws as unknown as { _socket: Socket })._socket;
  raw.pause();
  for (let i = 0; i < count; i += 1000) {
    const batch = Buffer.concat(Array.from({ length: Math.min(1000, count - i) }, (_, k) => floodPing(i + k)));
    if (!raw.write(batch)) await once(raw, 'drain');
  }
  return { raw, pongs };
}

/**
 * Floods the peer of `ws` with `count` pings without reading, gives it time to
 * read them (a test that cannot ask the peer how far it got), then reads:
 * the latest ping must be answered, and far fewer pongs than pings must come
 * back (one pong per ping would be all of them).
 */
export async function expectCoalescedPongs(ws: WebSocket, count: number): Promise<void> {
  const flood = await floodPings(ws, count);
  await new Promise((r) => setTimeout(r, 1500));
  flood.raw.resume();
  const deadline = Date.now() + 10_000;
  while (flood.pongs.at(-1) !== `p${count - 1}`) {
    assert.ok(Date.now() < deadline, `the latest ping answered (last pong: ${flood.pongs.at(-1)})`);
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(flood.pongs.length < count / 2, `${flood.pongs.length} pongs for ${count} pings`);
}
