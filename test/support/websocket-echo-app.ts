/**
 * A WebSocket echo app for tests of WebSockets through tunnels, on an HTTP
 * server of the test's: echoes every message with its opcode; the text
 * `close-me` closes with 4321; `/forbidden` refuses the upgrade with 403 (and
 * `x-why: policy`); `/plain` answers 200 as if it ignored the Upgrade; `/hang`
 * never answers.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

export interface WebSocketEchoApp {
  /** The last upgrade that reached the app. */
  readonly lastUpgrade: { url: string; headers: IncomingMessage['headers'] } | null;
  /** Close code and reason each of the app's WebSockets got from the other end. */
  readonly closes: { code: number; reason: string }[];
  /** Terminates the app's WebSockets and stops accepting. */
  close(): void;
}

/** Serves the echo app on `server`'s upgrades; the subprotocol `chat` is accepted. */
export function attachWebSocketEchoApp(server: Server): WebSocketEchoApp {
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (p) => (p.has('chat') ? 'chat' : false) });
  const hanging = new Set<Socket>();
  const app = {
    lastUpgrade: null as WebSocketEchoApp['lastUpgrade'],
    closes: [] as { code: number; reason: string }[],
    close(): void {
      for (const ws of wss.clients) ws.terminate();
      for (const s of hanging) s.destroy();
      wss.close();
    },
  };
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    app.lastUpgrade = { url: req.url ?? '', headers: req.headers };
    if (req.url === '/forbidden') {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 10\r\nx-why: policy\r\n\r\nforbidden\n');
      return;
    }
    if (req.url?.startsWith('/hang')) {
      hanging.add(socket);
      socket.on('error', () => undefined);
      socket.once('close', () => hanging.delete(socket));
      return;
    }
    if (req.url === '/plain') {
      socket.end('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nplain');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (!isBinary && data.toString() === 'close-me') ws.close(4321, 'bye from the app');
        else ws.send(data, { binary: isBinary });
      });
      ws.on('close', (code: number, reason: Buffer) => app.closes.push({ code, reason: reason.toString() }));
    });
  });
  return app;
}

/** The next message `ws` receives, with its opcode. */
export function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve) => ws.once('message', (data: Buffer, isBinary: boolean) => resolve({ data, isBinary })));
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Sends `text` and `binary` through `ws` to the echo app and checks each comes back whole, with its opcode. */
export async function assertEchoes(ws: WebSocket, text: string, binary: Buffer): Promise<void> {
  const gotText = nextMessage(ws);
  ws.send(text);
  const t = await gotText;
  assert.equal(t.isBinary, false);
  assert.equal(t.data.toString('utf8'), text);
  const gotBin = nextMessage(ws);
  ws.send(binary);
  const b = await gotBin;
  assert.equal(b.isBinary, true);
  assert.equal(sha256(b.data), sha256(binary));
}
