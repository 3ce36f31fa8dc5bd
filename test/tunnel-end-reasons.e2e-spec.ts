import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { startApp } from './support/app.js';
import { within } from './support/within.js';
import { RawTunnel, TUNNEL_DOMAIN, httpTo, subdomainOf, tunnelEnv } from './support/tunnel.js';

/** The Host of a raw tunnel's subdomain. */
const hostOf = (ready: Record<string, unknown>): string => `${subdomainOf(ready.tunnelUrl as string)}.${TUNNEL_DOMAIN}`;

describe('a request waiting on a tunnel that ends is told why', () => {
  it('502 tunnel client disconnected: the client went away', async () => {
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false' }));
    try {
      const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
      const waiting = httpTo(app.port, hostOf(ready));
      await tunnel.nextJson('http_request');
      tunnel.ws.terminate();
      const res = await waiting;
      assert.equal(res.status, 502);
      assert.equal(res.body.toString().trim(), 'tunnel client disconnected');
    } finally {
      await app.close();
    }
  });

  it('502 tunnel client stopped responding: keepalive gave up on a client that answers no ping', async () => {
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false', PING_INTERVAL_MS: '1000' }));
    try {
      const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
      const waiting = httpTo(app.port, hostOf(ready));
      await tunnel.nextJson('http_request');
      // The client reads nothing from now on: no pong, no answer, nothing sent.
      (tunnel.ws as unknown as { _socket: Socket })._socket.pause();
      const res = await within(waiting, 15_000, 'the answer');
      assert.equal(res.status, 502);
      assert.equal(res.body.toString().trim(), 'tunnel client stopped responding');
      tunnel.ws.terminate();
    } finally {
      await app.close();
    }
  });

  it('502 tunnel closed by the proxy, with why: the proxy closed the tunnel for a frame that broke the protocol (1002)', async () => {
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false' }));
    try {
      const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
      const tunnelClosed = new Promise<number>((resolve) => tunnel.ws.once('close', (code: number) => resolve(code)));
      const waiting = httpTo(app.port, hostOf(ready));
      await tunnel.nextJson('http_request');
      // A masked, empty text frame with RSV1 set, though no extension was agreed.
      (tunnel.ws as unknown as { _socket: Socket })._socket.write(Buffer.from([0xc1, 0x80, 0, 0, 0, 0]));
      const res = await within(waiting, 15_000, 'the answer');
      assert.equal(res.status, 502);
      assert.equal(res.body.toString().trim(), 'tunnel closed by the proxy: Invalid WebSocket frame: RSV1 must be clear');
      assert.equal(await within(tunnelClosed, 15_000, "the tunnel's close"), 1002);
      tunnel.ws.terminate();
    } finally {
      await app.close();
    }
  });

  it('503 server shutting down, with Retry-After: the drain closed the tunnel (1001) past SHUTDOWN_TIMEOUT_MS', async () => {
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false', SHUTDOWN_TIMEOUT_MS: '300' }));
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    const tunnelClosed = new Promise<number>((resolve) => tunnel.ws.once('close', (code: number) => resolve(code)));
    const waiting = httpTo(app.port, hostOf(ready));
    await tunnel.nextJson('http_request');
    const closing = app.close();
    try {
      const res = await within(waiting, 15_000, 'the answer');
      assert.equal(res.status, 503);
      assert.equal(res.body.toString().trim(), 'server shutting down');
      assert.equal(res.headers['retry-after'], '5');
      assert.equal(await tunnelClosed, 1001);
    } finally {
      tunnel.ws.terminate();
      await closing;
    }
  });
});
