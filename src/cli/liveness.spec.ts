import type { AddressInfo, Socket } from 'node:net';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket, WebSocketServer } from 'ws';
import { CLIENT_LIVENESS, watchLiveness } from './liveness.js';
import { parseConfig } from '../config/config.schema.js';

async function pair(): Promise<{ wss: WebSocketServer; client: WebSocket; server: WebSocket }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const server = new Promise<WebSocket>((r) => wss.once('connection', r));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  watchLiveness(client, { pingEveryMs: 50, deadAfterMs: 300 });
  await new Promise<void>((r, j) => {
    client.once('open', () => r());
    client.once('error', j);
  });
  return { wss, client, server: await server };
}

describe('watchLiveness', () => {
  it('keeps a connection whose peer answers pings, even with no data', async () => {
    const { wss, client } = await pair();
    try {
      await new Promise((r) => setTimeout(r, 800));
      assert.equal(client.readyState, WebSocket.OPEN);
    } finally {
      client.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    }
  });

  it('does not count the time the client itself holds the socket paused', async () => {
    const { wss, client } = await pair();
    try {
      client.pause();
      await new Promise((r) => setTimeout(r, 800));
      assert.equal(client.readyState, WebSocket.OPEN);
      client.resume();
    } finally {
      client.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    }
  });

  it('terminates a connection whose path went dark (the peer reads nothing, answers nothing)', async () => {
    const { wss, client, server } = await pair();
    try {
      (server as unknown as { _socket: Socket })._socket.pause();
      const closed = new Promise<number>((r) => client.once('close', (code) => r(code)));
      const started = Date.now();
      const code = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 3000))]);
      assert.equal(code, 1006);
      assert.ok(Date.now() - started < 1500);
    } finally {
      client.terminate();
      server.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    }
  });
});

describe('CLIENT_LIVENESS', () => {
  it("outlasts two of the proxy's default ping intervals: the proxy's pings are all a client hears while its own wait behind an upload", () => {
    assert.ok(CLIENT_LIVENESS.deadAfterMs > 2 * parseConfig({}).pingIntervalMs, `${CLIENT_LIVENESS.deadAfterMs} ms`);
  });
});
