import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { WebSocketServer } from 'ws';
import { UpgradeRouter } from '../src/upgrade/upgrade-router.service.js';
import { TunnelWebSocketFront } from '../src/tunnel/http/tunnel-websocket.front.js';
import { TunnelClient } from '../src/tunnel/client/tunnel-client.js';
import { startApp, type TestApp } from './support/app.js';
import { echoTarget, type TestTarget } from './support/targets.js';
import { TUNNEL_DOMAIN, tunnelEnv } from './support/tunnel.js';
import { attachWebSocketEchoApp } from './support/websocket-echo-app.js';
import { openRawWebSocket } from './support/raw-websocket.js';
import { Opcode, clientFrame } from './support/ws-frames.js';
import { readPayload } from './support/raw-frames.js';
import { assertHeldBounded, nextAccepted, trickleFrame, TRICKLE_BYTES } from './support/trickle.js';

const serverOf = (app: TestApp, path: string): WebSocketServer => app.app.get(UpgradeRouter).resolvePath(path)!.server;

const BYTES = TRICKLE_BYTES;

// One app (tunnels on: the tunnel cases need them) and one echo target for every case of this file.
let app: TestApp;
let echo: TestTarget;
before(async () => {
  app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false' }));
  echo = await echoTarget();
});
after(async () => {
  await app.close();
  await echo.close();
});

describe('a frame trickled a few bytes per read', () => {
  it('is held by a relay in a bounded number of Buffers, and still relayed whole', async () => {
    const accepted = nextAccepted(serverOf(app, '/relay'));
    const socket = await openRawWebSocket(app.port, `/relay?host=127.0.0.1&port=${echo.port}`);
    try {
      const ws = await accepted;
      const payload = randomBytes(BYTES);
      assertHeldBounded(await trickleFrame(socket, ws, payload), 'the relay');
      assert.deepEqual(await readPayload(socket, BYTES), payload);
    } finally {
      socket.destroy();
    }
  });

  it('is held by a v2 tunnel in a bounded number of Buffers', async () => {
    const accepted = nextAccepted(serverOf(app, '/tunnel'));
    const socket = await openRawWebSocket(app.port, '/tunnel?v=2');
    try {
      const ws = await accepted;
      // A frame larger than what is sent: still arriving, all of it held.
      assertHeldBounded(await trickleFrame(socket, ws, randomBytes(BYTES), 2 * BYTES), 'the tunnel');
    } finally {
      socket.destroy();
    }
  });

  it('is held by a refused relay that is closed with a code (errors=close) in a bounded number of Buffers', async () => {
    const accepted = nextAccepted(serverOf(app, '/relay'));
    // A blocked target (TEST_ENV blocks 10/8): refused by the policy, nothing is dialled.
    const socket = await openRawWebSocket(app.port, '/relay?host=10.0.0.1&port=22&errors=close');
    try {
      assertHeldBounded(await trickleFrame(socket, await accepted, randomBytes(BYTES), 2 * BYTES), 'the refused relay');
    } finally {
      socket.destroy();
    }
  });

  it("is held by a tunnel's WebSocket requester (no token needed) in a bounded number of Buffers, and still arrives whole", async () => {
    const origin: Server = createServer();
    const wsApp = attachWebSocketEchoApp(origin);
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    const client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: `127.0.0.1:${(origin.address() as AddressInfo).port}`, protocol: 2 });
    const front = app.app.get(TunnelWebSocketFront) as unknown as { wss: WebSocketServer };
    const accepted = nextAccepted(front.wss);
    const socket = await openRawWebSocket(app.port, '/', `${client.subdomain}.${TUNNEL_DOMAIN}`);
    try {
      const payload = randomBytes(BYTES);
      assertHeldBounded(await trickleFrame(socket, await accepted, payload), "the tunnel's requester");
      assert.deepEqual(await readPayload(socket, BYTES), payload);
    } finally {
      socket.destroy();
      await client.close();
      wsApp.close();
      origin.closeAllConnections();
      await new Promise<void>((resolve) => origin.close(() => resolve()));
    }
  });
});

describe('a fragmented message whose fragments come padded with control frames', () => {
  it('pins about its bytes in a relay, not every 64 KiB read a fragment came in, and is still relayed whole', async () => {
    const accepted = nextAccepted(serverOf(app, '/relay'));
    const socket = await openRawWebSocket(app.port, `/relay?host=127.0.0.1&port=${echo.port}`);
    try {
      const ws = await accepted;
      const receiver = (ws as unknown as { _receiver: { _fragments: Buffer[] } })._receiver;
      // Unsolicited pongs (RFC 6455 §5.5.3 allows them) count toward no message: 64 KiB of them a read.
      const pong = clientFrame(Opcode.PONG, Buffer.alloc(125, 0x70));
      const pad = Buffer.concat(Array.from({ length: 500 }, () => pong));
      const COUNT = 32;
      const payload = randomBytes(COUNT);
      let maxPinned = 0;
      for (let i = 0; i < COUNT; i++) {
        socket.write(Buffer.concat([pad, clientFrame(i === 0 ? Opcode.BINARY : Opcode.CONTINUATION, payload.subarray(i, i + 1), { fin: false })]));
        await new Promise((r) => setTimeout(r, 2));
        const pinned = [...new Set(receiver._fragments.map((f) => f.buffer))].reduce((a, b) => a + b.byteLength, 0);
        maxPinned = Math.max(maxPinned, pinned);
      }
      assert.ok(receiver._fragments.length > 0, 'the fragments were still held (else nothing was checked)');
      assert.ok(maxPinned <= 4096, `${COUNT} one-byte fragments pinned ${maxPinned} bytes`);
      socket.write(clientFrame(Opcode.CONTINUATION, Buffer.alloc(0)));
      assert.deepEqual(await readPayload(socket, COUNT), payload);
    } finally {
      socket.destroy();
    }
  });
});
