/**
 * Bytes a client sends while its upgrade waits for admission. Before the watch
 * for its FIN begins (`FIN_WATCH_AFTER_MS`) nothing reads the socket, so what
 * Node itself does with them is what counts; after, the watch keeps them for
 * the handshake, whichever answer it carries. Through the real app, an extra
 * admission rule (docs/extending.md) holding the admission open.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { AdmissionService } from '../src/upgrade/admission.service.js';
import { Refusal } from '../src/common/refusal.js';
import { UpgradeRouter } from '../src/upgrade/upgrade-router.service.js';
import { startApp, type TestApp } from './support/app.js';
import { UPGRADE_HEADERS } from './support/raw-http.js';
import { readFrames, readPayload } from './support/raw-frames.js';
import { readResponseHead } from './support/raw-websocket.js';
import { Opcode, clientFrame } from './support/ws-frames.js';
import { echoTarget, randomPayload, type TestTarget } from './support/targets.js';
import { dial } from './support/tcp-client.js';
import { nextAccepted } from './support/trickle.js';
import { waitFor } from './support/wait.js';
import { within } from './support/within.js';

/** Buffers a socket's readable side holds (a BufferList in Node 20, an array read from `bufferIndex` later). */
function heldBuffers(socket: Duplex): number {
  const state = (socket as unknown as { _readableState: { buffer: { length: number }; bufferIndex?: number } })._readableState;
  return state.buffer.length - (state.bufferIndex ?? 0);
}

describe('bytes a client sends while its upgrade waits for admission', () => {
  let app: TestApp;
  let echo: TestTarget;
  /** Called with the proxy's side of each held upgrade; the admission waits until `release`. */
  let onHeld: (socket: Duplex) => void = () => undefined;
  let release: () => void = () => undefined;

  before(async () => {
    echo = await echoTarget();
    app = await startApp();
    app.app.get(AdmissionService).addRule(async (ctx) => {
      if (ctx.query.get('hold') === null) return;
      const released = new Promise<void>((r) => (release = r));
      onHeld(ctx.socket);
      await released;
      if (ctx.query.get('refuse') !== null) throw new Refusal(403, 'refused after the hold', 'blocked');
    });
  });
  after(async () => {
    release();
    await app?.close();
    await echo?.close();
  });

  it('trickled before the FIN watch begins are left to the kernel after the first read, not buffered by Node a Buffer per read, and still reach the target', async () => {
    const proxySide = new Promise<Duplex>((r) => (onHeld = r));
    const client = await dial(app.port);
    client.setNoDelay(true);
    client.on('error', () => undefined);
    try {
      client.write(`GET /relay?host=127.0.0.1&port=${echo.port}&hold=1 HTTP/1.1\r\nHost: 127.0.0.1:${app.port}\r\n${UPGRADE_HEADERS}\r\n`);
      const socket = await proxySide;
      // The watch's 'data' listener marks its start: what Node holds for the socket then came in unread.
      let written = 0;
      let atWatch: { buffers: number; written: number } | null = null;
      socket.on('newListener', (event: string) => {
        if (event === 'data' && atWatch === null) atWatch = { buffers: heldBuffers(socket), written };
      });
      // A frame a byte per TCP segment, one per event-loop turn, until the watch has begun; then the rest at once.
      const payload = randomPayload(60_000);
      const frame = clientFrame(Opcode.BINARY, payload, { lengthBits: 16 });
      while (atWatch === null && written < frame.length) {
        client.write(frame.subarray(written, written + 1));
        written++;
        await new Promise((r) => setImmediate(r));
      }
      client.write(frame.subarray(written));
      const seen = atWatch as { buffers: number; written: number } | null;
      assert.ok(seen, 'the FIN watch began while the frame was trickled');
      assert.ok(seen.written > 100, `${seen.written} bytes were sent before the watch began (a test that means something needs many)`);
      assert.ok(seen.buffers <= 1, `Node held ${seen.buffers} Buffers for the ${seen.written} bytes sent before the watch began`);
      release();
      const { head, rest } = await readResponseHead(client);
      assert.match(head, /^HTTP\/1\.1 101 /);
      assert.deepEqual(await readPayload(client, payload.length, rest), payload);
    } finally {
      client.destroy();
    }
  });

  it('read by the FIN watch reach the WebSocket that carries a refusal (errors=close), as they reach an accepted one', async () => {
    const proxySide = new Promise<Duplex>((r) => (onHeld = r));
    const accepted = nextAccepted(app.app.get(UpgradeRouter).resolvePath('/relay')!.server);
    const client = await dial(app.port);
    client.setNoDelay(true);
    client.on('error', () => undefined);
    try {
      client.write(`GET /relay?host=127.0.0.1&port=${echo.port}&hold=1&refuse=1&errors=close HTTP/1.1\r\nHost: 127.0.0.1:${app.port}\r\n${UPGRADE_HEADERS}\r\n`);
      const socket = (await proxySide) as Socket;
      await waitFor(() => socket.listenerCount('data') > 0, 5000, 'the FIN watch');
      // Sent before any 101 (RFC 6455 says nothing may be): the client's close, which its WebSocket answers.
      const early = clientFrame(Opcode.CLOSE, Buffer.from([0x10, 0xe1]));
      const readBefore = socket.bytesRead;
      client.write(early);
      await waitFor(() => socket.bytesRead >= readBefore + early.length, 5000, 'the early close read');
      release();
      const { head, rest } = await readResponseHead(client);
      assert.match(head, /^HTTP\/1\.1 101 /);
      const [close] = await readFrames(client, 1, rest);
      assert.deepEqual([close.opcode, close.payload.readUInt16BE(0)], [Opcode.CLOSE, 4403]);
      // Read by the WebSocket, the client's close ends it with the client's code (else, unanswered, a 1006 after 5 s).
      const [code] = (await within(once(await accepted, 'close'), 10_000, 'the refused WebSocket closed')) as [number];
      assert.equal(code, 4321);
    } finally {
      client.destroy();
    }
  });
});
