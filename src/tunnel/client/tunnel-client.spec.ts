import { createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocketServer } from 'ws';
import { parseTarget, TunnelClient } from './tunnel-client.js';

describe('parseTarget', () => {
  it('reads host:port, [v6]:port and a bare port', () => {
    assert.deepEqual(parseTarget('example.org:8080'), { host: 'example.org', port: 8080 });
    assert.deepEqual(parseTarget('[::1]:22'), { host: '::1', port: 22 });
    assert.deepEqual(parseTarget('3000'), { host: '127.0.0.1', port: 3000 });
  });

  it('refuses a port outside 1..65535, bare or not', () => {
    for (const bad of ['0', '70000', '127.0.0.1:0', '127.0.0.1:65536']) assert.throws(() => parseTarget(bad), /invalid port/, bad);
  });
});

describe('TunnelClient.connect against a proxy that never gets ready', () => {
  it('rejects when the handshake is never answered', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const { port } = silent.address() as { port: number };
      const started = Date.now();
      await assert.rejects(TunnelClient.connect({ proxy: `ws://127.0.0.1:${port}/tunnel`, readyTimeoutMs: 300 }));
      assert.ok(Date.now() - started < 5000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it('rejects, and closes the socket, when tunnel_ready never comes after the handshake', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    let serverSideClosed = false;
    wss.on('connection', (ws) => ws.on('close', () => (serverSideClosed = true)));
    try {
      const { port } = wss.address() as { port: number };
      await assert.rejects(TunnelClient.connect({ proxy: `ws://127.0.0.1:${port}/tunnel`, readyTimeoutMs: 300 }), /no tunnel_ready within 300 ms/);
      const deadline = Date.now() + 3000;
      while (!serverSideClosed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.ok(serverSideClosed, 'the client let go of the connection');
    } finally {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    }
  });
});
