import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import { WS_SEND_HIGH_FRAMES } from '../../relay/relay-pipe.js';
import type { WebSocketSink } from '../core/websocket-stream.js';
import type { TunnelSession } from '../core/tunnel-session.js';
import type { WsproxyConfigType } from '../../config/wsproxy.config.js';
import type { KeepaliveService } from '../../upgrade/keepalive.service.js';
import type { WsproxyEvents } from '../../common/events.js';
import type { DrainService } from '../../lifecycle/drain.service.js';
import { REQUESTER_HIGH_WATER, TunnelWebSocketFront } from './tunnel-websocket.front.js';

const until = async (pred: () => boolean, ms: number, what: string): Promise<void> => {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

/**
 * A requester's WebSocket through the front, its handshake accepted: `sink` is what the tunnel's stream
 * sends the client's messages to, `serverSocket` the proxy's side of the requester's connection.
 */
async function acceptedRequester(): Promise<{ sink: WebSocketSink; serverSocket: Socket; requester: WebSocket; opened: Promise<void>; close(): void }> {
  const front = new TunnelWebSocketFront(
    { tunnelPublicScheme: 'http', maxMessageBytes: 1024 * 1024 } as WsproxyConfigType,
    { watch: () => undefined } as unknown as KeepaliveService,
    { emit: () => undefined } as unknown as WsproxyEvents,
    { track: () => () => undefined } as unknown as DrainService,
  );
  let sink!: WebSocketSink;
  let markOpen!: () => void;
  const opened = new Promise<void>((r) => (markOpen = r));
  const stream = {
    bind: () => undefined,
    message: () => true,
    onWritable: () => undefined,
    requesterClosed: () => undefined,
    opened: () => markOpen(),
    abort: () => undefined,
  };
  const session = {
    openWebSocket: (_head: unknown, s: WebSocketSink) => {
      sink = s;
      return stream;
    },
  } as unknown as TunnelSession;
  const server = createServer();
  let serverSocket!: Socket;
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    serverSocket = socket as Socket;
    front.forward(session, req, socket, head, { clientIp: '127.0.0.1', host: 'x.tunnel.test', path: '/ws', rawHeaders: req.rawHeaders, forwarded: false, release: () => undefined });
    sink.accept({ status: 101, headers: [] });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const requester = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`, { perMessageDeflate: false });
  requester.on('error', () => undefined);
  await once(requester, 'open');
  await opened;
  return {
    sink,
    serverSocket,
    requester,
    opened,
    close: () => {
      requester.terminate();
      serverSocket.destroy();
      server.close();
    },
  };
}

describe('TunnelWebSocketFront: a requester that does not read', () => {
  it('makes the client wait once WS_SEND_HIGH_FRAMES 1-byte fragments are queued for it, long before their bytes reach REQUESTER_HIGH_WATER; all arrive in order once it reads', async () => {
    const { sink, serverSocket, requester, close } = await acceptedRequester();
    try {
      // A requester that never reads, its connection full: nothing handed to the socket leaves the proxy.
      serverSocket.cork();
      let sent = 0;
      const limit = REQUESTER_HIGH_WATER; // far more 1-byte messages than the frame bound
      while (sent < limit) {
        const more = sink.send(Buffer.of(sent & 0xff), true, true);
        sent++;
        if (!more) break;
      }
      assert.ok(sent <= WS_SEND_HIGH_FRAMES, `the client was asked to wait only after ${sent} 1-byte messages were queued for the requester`);
      let drained = false;
      sink.whenDrained(() => (drained = true));
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(drained, false, 'nothing was written: the client still waits');
      // The requester reads again: the wait ends, and every byte arrives in order.
      let received = 0;
      let inOrder = true;
      requester.on('message', (data: Buffer) => {
        for (const b of data) if (b !== (received++ & 0xff)) inOrder = false;
      });
      serverSocket.uncork();
      await until(() => drained && received === sent, 10_000, 'every message delivered and the client told to go on');
      assert.ok(inOrder, 'bytes in order');
    } finally {
      close();
    }
  });
});
