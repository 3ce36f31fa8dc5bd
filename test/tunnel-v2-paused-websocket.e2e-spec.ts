/**
 * A v2 WebSocket stream paused for a requester that does not read: what the
 * proxy holds of the messages the tunnel client still sends within its
 * credit, through the real app, a raw v2 client and a raw requester.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { V2Mux } from '../src/tunnel/protocol/v2-mux.js';
import { encodeFrame, encodeMessage, encodeResponse } from '../src/tunnel/protocol/v2.js';
import { TunnelService } from '../src/tunnel/tunnel.service.js';
import { startApp } from './support/app.js';
import { UPGRADE_HEADERS } from './support/raw-http.js';
import { readFrames } from './support/raw-frames.js';
import { readResponseHead } from './support/raw-websocket.js';
import { dial } from './support/tcp-client.js';
import { TUNNEL_DOMAIN, subdomainOf, tunnelEnv, waitFor } from './support/tunnel.js';
import { RawV2Tunnel } from './tunnel-v2-support.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** What of a mux stream the test looks at. */
interface StreamInternals {
  readonly paused: boolean;
  readonly inbox: Iterable<unknown> & { readonly length: number };
}

/** Bytes of the ArrayBuffers that `values` keep alive (Uint8Arrays found a few objects deep). */
function pinnedBytes(values: unknown[]): number {
  const buffers = new Set<ArrayBufferLike>();
  const walk = (v: unknown, depth: number): void => {
    if (v instanceof Uint8Array) buffers.add(v.buffer);
    else if (v !== null && typeof v === 'object' && depth < 5) for (const x of Object.values(v)) walk(x, depth + 1);
  };
  for (const v of values) walk(v, 0);
  return [...buffers].reduce((n, b) => n + b.byteLength, 0);
}

describe('a v2 WebSocket stream paused for a requester that does not read', () => {
  it('holds 1-byte messages that shared their reads with other frames in about their bytes, not a read each, and hands each on as its own message', async () => {
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false' }));
    const { tunnel, ready } = await RawV2Tunnel.open(app.wsUrl);
    const requester = await dial(app.port);
    requester.on('error', () => undefined);
    try {
      const subdomain = subdomainOf(ready.ready.tunnelUrl);
      requester.pause();
      requester.write(`GET /chat HTTP/1.1\r\nHost: ${subdomain}.${TUNNEL_DOMAIN}\r\n${UPGRADE_HEADERS}\r\n`);
      const id = (await tunnel.nextOpen()).stream;
      tunnel.send(encodeResponse(id, { status: 101, headers: [] }));
      const mux = (app.app.get(TunnelService).find(subdomain)!.wire as unknown as { mux: V2Mux }).mux;
      const stream = (): StreamInternals | undefined => (mux as unknown as { streams: { get(id: number): StreamInternals | undefined } }).streams.get(id);

      // Messages within the credit until the requester's side is full and the proxy holds what comes.
      const big = Buffer.alloc(60 * KiB, 0x61);
      let spent = 0;
      let sentBig = 0;
      await waitFor(
        () => {
          const s = stream();
          if (spent > MiB && s?.paused && s.inbox.length > 0) return true;
          while ((tunnel.credit.get(id) ?? 0) - spent >= big.length + KiB) {
            tunnel.send(encodeMessage(id, big, true, true));
            spent += big.length;
            sentBig++;
          }
          return false;
        },
        60_000,
        'the stream paused for its requester',
      );
      // Large messages still on their way when the stream paused are held after it too, ahead of the 1-byte ones.
      const isBig = (held: unknown): boolean => (held as { chunk?: Uint8Array }).chunk?.length === big.length;
      const smallBytesHeld = (): number => mux.buffered().inbound - [...stream()!.inbox].filter(isBig).length * big.length;

      // Each 1-byte message behind 32 KiB of a frame the proxy ignores (a type it does not know), in one write.
      const COUNT = 200;
      const pad = encodeFrame(0x7e, 0, 0, new Uint8Array(32 * KiB));
      for (let i = 0; i < COUNT; i++) {
        tunnel.send(pad);
        tunnel.send(encodeMessage(id, Uint8Array.of(i), true, true));
        await new Promise((r) => setImmediate(r));
      }
      await waitFor(() => smallBytesHeld() >= COUNT, 10_000, 'the 1-byte messages held');
      const held = [...stream()!.inbox];
      const pinned = pinnedBytes(held.slice(held.findLastIndex(isBig) + 1));
      assert.ok(pinned <= 64 * KiB, `${COUNT} one-byte messages held pin ${pinned} bytes`);

      // The requester reads: every message arrives as it was sent, the 1-byte ones last, one frame each.
      requester.resume();
      const { head, rest } = await readResponseHead(requester);
      assert.match(head, /^HTTP\/1\.1 101 /);
      const frames = await readFrames(requester, sentBig + COUNT, rest);
      assert.ok(frames.slice(0, sentBig).every((f) => f.opcode === 0x2 && f.payload.equals(big)));
      assert.deepEqual(
        frames.slice(sentBig).map((f) => [f.opcode, ...f.payload]),
        Array.from({ length: COUNT }, (_, i) => [0x2, i]),
      );
    } finally {
      requester.destroy();
      await tunnel.close();
      await app.close();
    }
  });
});
