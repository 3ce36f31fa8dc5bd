import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { openRawWebSocket } from './raw-websocket.js';
import { readFrames } from './raw-frames.js';
import { Opcode, clientFrame } from './ws-frames.js';
import { within } from './within.js';

describe('openRawWebSocket', () => {
  it('keeps the frames that came in the read of the 101 for the caller, also when it listens only later', async () => {
    // A server whose first frame goes out in the same write as its 101, as a WebSocket server may send it.
    const server = createServer((socket: Socket) => {
      let request = '';
      socket.on('data', (chunk: Buffer) => {
        request += chunk.toString('latin1');
        if (!request.includes('\r\n\r\n')) return;
        socket.removeAllListeners('data');
        const head = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n';
        socket.write(Buffer.concat([Buffer.from(head, 'latin1'), clientFrame(Opcode.BINARY, 'with the 101', { maskKey: null })]));
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const socket = await openRawWebSocket((server.address() as AddressInfo).port, '/');
    try {
      // The caller sets other things up before it reads.
      await new Promise((r) => setTimeout(r, 50));
      const [frame] = await within(readFrames(socket, 1), 5000, 'the frame sent with the 101');
      assert.equal(frame.opcode, Opcode.BINARY);
      assert.equal(frame.payload.toString(), 'with the 101');
    } finally {
      socket.destroy();
      server.close();
    }
  });
});
