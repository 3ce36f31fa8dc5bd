import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { WebSocketServer } from 'ws';
import { HandshakeRefused, openRelay } from './open-relay.js';
import { bridgeStdio } from './stdio-bridge.js';

describe('openRelay', () => {
  let http: Server;
  let wss: WebSocketServer;
  let base: string;

  before(async () => {
    http = createServer();
    wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
    http.on('upgrade', (req, socket, head) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/refuse') {
        socket.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\ntarget not allowed\n');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        if (url.pathname === '/banner') {
          // Speaks first, as sshd does: the frames can share a TCP segment with the 101.
          ws.send(Buffer.from('SSH-2.0-banner\r\n'));
          ws.close(1000, 'target closed');
        } else {
          ws.send(Buffer.from(req.headers.authorization ?? '-'));
          ws.send(Buffer.from(req.headers.origin ?? '-'));
          ws.close(1000);
        }
      });
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    base = `ws://127.0.0.1:${(http.address() as AddressInfo).port}`;
  });
  after(async () => {
    wss.close();
    await new Promise((r) => http.close(r));
  });

  async function bridgeOnce(url: string, headers: Record<string, string> = {}, origin?: string): Promise<{ out: string[]; code: number }> {
    const ws = await openRelay({ url, headers, origin });
    const out: string[] = [];
    const output = new Writable({
      write(chunk: Buffer, _e, cb) {
        out.push(chunk.toString());
        cb();
      },
    });
    const end = await bridgeStdio({ ws, input: new PassThrough(), output }).done;
    return { out, code: end.code };
  }

  it('misses no frame sent together with the handshake response', async () => {
    for (let i = 0; i < 50; i++) {
      const { out, code } = await bridgeOnce(`${base}/banner`);
      assert.equal(out.join(''), 'SSH-2.0-banner\r\n', `attempt ${i}`);
      assert.equal(code, 1000);
    }
  });

  it('sends the extra headers and the origin', async () => {
    const { out } = await bridgeOnce(`${base}/echo`, { Authorization: 'Bearer t.o.k' }, 'https://app.example.com');
    assert.deepEqual(out, ['Bearer t.o.k', 'https://app.example.com']);
  });

  it('rejects with the HTTP status and the reason of a refused handshake', async () => {
    await assert.rejects(openRelay({ url: `${base}/refuse`, headers: {}, origin: undefined }), (err: unknown) => {
      assert.ok(err instanceof HandshakeRefused);
      assert.equal(err.status, 403);
      assert.equal(err.reason, 'target not allowed');
      assert.equal(err.message, 'HTTP 403 Forbidden: target not allowed');
      return true;
    });
  });
});
