import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { WebSocket, type WebSocketServer } from 'ws';
import { openRawWebSocket } from '../../test/support/raw-websocket.js';
import { assertHeldBounded, nextAccepted, trickleFrame, TRICKLE_BYTES } from '../../test/support/trickle.js';
import { acceptingServer } from './accepting-server.js';
import { endUnlessEnded } from './quiet-ends.js';

const MAX_PAYLOAD = 64 * 1024;

describe('acceptingServer', () => {
  let http: Server;
  let server: WebSocketServer;
  let port: number;

  before(async () => {
    server = acceptingServer({ maxPayload: MAX_PAYLOAD, handleProtocols: (offered) => (offered.has('chosen') ? 'chosen' : false) });
    http = createServer();
    // ws closes with the code itself (1009 for a message over maxPayload), then reports the error.
    http.on('upgrade', (req, socket, head) => server.handleUpgrade(req, socket, head, (ws) => ws.on('error', () => undefined)));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    port = (http.address() as AddressInfo).port;
  });
  after(async () => {
    http.closeAllConnections();
    await new Promise((resolve) => http.close(resolve));
  });

  async function client(protocols: string[] = []): Promise<WebSocket> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}`, protocols, { perMessageDeflate: true });
    await once(ws, 'open');
    return ws;
  }

  it('makes every WebSocket it accepts hold a frame trickled a byte per read in a bounded number of Buffers, and still deliver it whole', async () => {
    const accepted = nextAccepted(server);
    const socket = await openRawWebSocket(port, '/');
    try {
      const ws = await accepted;
      const message = once(ws, 'message');
      const payload = randomBytes(TRICKLE_BYTES);
      assertHeldBounded(await trickleFrame(socket, ws, payload), 'the accepted WebSocket');
      assert.deepEqual((await message)[0], payload);
    } finally {
      socket.destroy();
    }
  });

  it('answers pings itself (the server is made with autoPong off)', async () => {
    const ws = await client();
    const pongs: string[] = [];
    ws.on('pong', (data: Buffer) => pongs.push(data.toString()));
    // The answer to the ping goes out before the answer to the close that follows it.
    ws.ping(Buffer.from('are you there'));
    ws.close(1000);
    await once(ws, 'close');
    assert.deepEqual(pongs, ['are you there']);
  });

  it("gives every accepted WebSocket's receiver and socket the end that skips redundant calls", async () => {
    const accepted = nextAccepted(server);
    const ws = await client();
    try {
      const internals = (await accepted) as unknown as { _receiver: object; _socket: object };
      assert.equal(Object.getOwnPropertyDescriptor(internals._receiver, 'end')?.value, endUnlessEnded);
      assert.equal(Object.getOwnPropertyDescriptor(internals._socket, 'end')?.value, endUnlessEnded);
    } finally {
      ws.terminate();
    }
  });

  it("keeps the site's options (subprotocol, largest message) and the proxy's (no compression)", async () => {
    const ws = await client(['other', 'chosen']);
    try {
      assert.equal(ws.protocol, 'chosen');
      assert.equal(ws.extensions, '', 'permessage-deflate was offered and declined');
      ws.send(Buffer.alloc(MAX_PAYLOAD + 1));
      const [code] = (await once(ws, 'close')) as [number];
      assert.equal(code, 1009);
    } finally {
      ws.terminate();
    }
  });
});
