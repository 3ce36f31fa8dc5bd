/**
 * The reference tunnel client (v1) against a proxy that sends what the real
 * one never does: a fake `/tunnel` endpoint on loopback.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { TunnelClient } from '../src/tunnel/client/tunnel-client.js';
import { T, encodeOpen, encodeReady } from '../src/tunnel/protocol/v2.js';

describe('v1 reference client and a proxy that declares a wrong Content-Length', () => {
  it('sends the local service the body it carries, with its own length: nothing left over to be read as a second request', async () => {
    const seen: { method: string; url: string; body: string }[] = [];
    const local = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', body: Buffer.concat(chunks).toString() });
        res.end('ok');
      });
    });
    local.keepAliveTimeout = 10_000;
    await new Promise<void>((r) => local.listen(0, '127.0.0.1', () => r()));
    const fake = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(fake, 'listening');
    const connected = once(fake, 'connection') as Promise<[WebSocket]>;
    const client = await Promise.all([
      TunnelClient.connect({ proxy: `ws://127.0.0.1:${(fake.address() as AddressInfo).port}/tunnel`, to: `127.0.0.1:${(local.address() as AddressInfo).port}` }),
      connected.then(([ws]) => {
        ws.send(JSON.stringify({ type: 'tunnel_ready', tunnelUrl: 'http://0123456789abcdef.tunnel.test', rawPort: 0 }));
        return ws;
      }),
    ]);
    const [tunnel, ws] = client;
    try {
      const smuggled = 'GET /smuggled HTTP/1.1\r\nHost: local\r\n\r\n';
      const body = 'ab' + smuggled;
      const answered = new Promise<Record<string, unknown>>((resolve) =>
        ws.on('message', (m) => {
          const msg = JSON.parse(m.toString()) as Record<string, unknown>;
          if (msg.type === 'http_response') resolve(msg);
        }),
      );
      ws.send(
        JSON.stringify({
          type: 'http_request',
          id: '0c41d9e2b7aa',
          method: 'POST',
          path: '/upload',
          headers: { host: '0123456789abcdef.tunnel.test', 'content-length': '2' },
          body: Buffer.from(body).toString('base64'),
          bodyEncoding: 'base64',
        }),
      );
      const response = await answered;
      assert.equal(response.status, 200);
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(seen, [{ method: 'POST', url: '/upload', body }]);
    } finally {
      await tunnel.close();
      fake.close();
      local.closeAllConnections();
      local.close();
    }
  });
});

describe('TunnelClient and a refusal with an endless body', () => {
  it('keeps the first KiB of the reason and stops reading', async () => {
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    let written = 0;
    const fake = createServer((_req, res) => {
      res.writeHead(401, { 'content-type': 'text/plain' });
      const pump = (): void => {
        while (written < 256 * 1024 * 1024 && res.write(chunk)) written += chunk.length;
        if (written < 256 * 1024 * 1024) res.once('drain', pump);
        else res.end();
      };
      pump();
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', () => r()));
    try {
      const err = await TunnelClient.connect({ proxy: `ws://127.0.0.1:${(fake.address() as AddressInfo).port}/tunnel`, readyTimeoutMs: 10_000 }).then(
        () => assert.fail('connected'),
        (e: unknown) => e as { status: number; body: string },
      );
      assert.equal(err.status, 401);
      assert.ok(err.body.length <= 1024, `kept ${err.body.length} characters`);
      assert.ok(written < 256 * 1024 * 1024, 'stopped reading before the end');
    } finally {
      fake.closeAllConnections();
      fake.close();
    }
  });
});

describe('TunnelClient and a proxy that sends an absolute-form request target', () => {
  const targets = ['http://evil.example/steal', 'evil.example:80', '*'];

  const withFake = async (
    protocol: 1 | 2,
    run: (ws: WebSocket, seen: string[]) => Promise<void>,
  ): Promise<void> => {
    const seen: string[] = [];
    const local = createServer((req: IncomingMessage, res) => {
      seen.push(`${req.method} ${req.url} host=${req.headers.host}`);
      res.end('ok');
    });
    await new Promise<void>((r) => local.listen(0, '127.0.0.1', () => r()));
    const fake = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(fake, 'listening');
    const connected = once(fake, 'connection') as Promise<[WebSocket]>;
    const [tunnel, ws] = await Promise.all([
      TunnelClient.connect({ proxy: `ws://127.0.0.1:${(fake.address() as AddressInfo).port}/tunnel`, to: `127.0.0.1:${(local.address() as AddressInfo).port}`, protocol }),
      connected.then(([ws]) => {
        if (protocol === 1) ws.send(JSON.stringify({ type: 'tunnel_ready', tunnelUrl: 'http://0123456789abcdef.tunnel.test', rawPort: 0 }));
        else ws.send(encodeReady('http://0123456789abcdef.tunnel.test', 0));
        return ws;
      }),
    ]);
    try {
      await run(ws, seen);
    } finally {
      await tunnel.close();
      fake.close();
      local.closeAllConnections();
      local.close();
    }
  };

  it('v1: answers 400 and never passes it to the local service (origin-form only, as the proxy sends)', async () => {
    await withFake(1, async (ws, seen) => {
      const statuses = new Map<string, number>();
      const all = new Promise<void>((resolve) =>
        ws.on('message', (m) => {
          const msg = JSON.parse(m.toString()) as { type: string; id: string; status: number };
          if (msg.type === 'http_response') statuses.set(msg.id, msg.status);
          if (statuses.size === targets.length + 1) resolve();
        }),
      );
      targets.forEach((path, i) => ws.send(JSON.stringify({ type: 'http_request', id: `r${i}`, method: 'GET', path, headers: { host: 'evil.example' } })));
      ws.send(JSON.stringify({ type: 'http_request', id: 'ok', method: 'GET', path: '/fine', headers: { host: 'x.tunnel.test' } }));
      await all;
      assert.deepEqual([...statuses.entries()].sort(), [['ok', 200], ['r0', 400], ['r1', 400], ['r2', 400]]);
      assert.deepEqual(seen, ['GET /fine host=x.tunnel.test']);
    });
  });

  it('v2: answers 400 and never passes it to the local service', async () => {
    await withFake(2, async (ws, seen) => {
      const statuses = new Map<number, number>();
      const all = new Promise<void>((resolve) =>
        ws.on('message', (m: Buffer) => {
          if (m[0] === T.RESPONSE) statuses.set(m.readUInt32BE(2), (JSON.parse(m.subarray(6, m.indexOf(0, 6) < 0 ? m.length : m.indexOf(0, 6)).toString()) as { status: number }).status);
          if (statuses.size === targets.length + 1) resolve();
        }),
      );
      targets.forEach((path, i) => ws.send(encodeOpen(i + 1, { kind: 'http', method: 'GET', path, headers: [['host', 'evil.example']] }, true)));
      ws.send(encodeOpen(10, { kind: 'http', method: 'GET', path: '/fine', headers: [['host', 'x.tunnel.test']] }, true));
      await all;
      assert.deepEqual([...statuses.entries()].sort((a, b) => a[0] - b[0]), [[1, 400], [2, 400], [3, 400], [10, 200]]);
      assert.deepEqual(seen, ['GET /fine host=x.tunnel.test']);
    });
  });
});

describe('TunnelClient on a path that goes dark', () => {
  it('pings, and closes the tunnel (1006) once nothing is heard for deadAfterMs', async () => {
    const fake = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(fake, 'listening');
    fake.on('connection', (ws) => {
      ws.send(JSON.stringify({ type: 'tunnel_ready', tunnelUrl: '', rawPort: 1 }));
      // No FIN, no RST: the proxy's end just stops reading (no pong) and writing.
      setTimeout(() => (ws as unknown as { _socket: { pause(): void } })._socket.pause(), 50);
    });
    const tunnel = await TunnelClient.connect({
      proxy: `ws://127.0.0.1:${(fake.address() as AddressInfo).port}/tunnel`,
      tcpTo: '127.0.0.1:9',
      liveness: { pingEveryMs: 100, deadAfterMs: 500 },
    });
    try {
      const started = Date.now();
      const closed = await Promise.race([tunnel.closed, new Promise<null>((r) => setTimeout(() => r(null), 5000).unref())]);
      assert.ok(closed, 'the tunnel noticed the dead path');
      assert.equal(closed.code, 1006);
      assert.ok(Date.now() - started < 3000);
    } finally {
      tunnel.ws.terminate();
      fake.close();
    }
  });

  it('stays up while the proxy answers its pings', async () => {
    const fake = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(fake, 'listening');
    fake.on('connection', (ws) => ws.send(JSON.stringify({ type: 'tunnel_ready', tunnelUrl: '', rawPort: 1 })));
    const tunnel = await TunnelClient.connect({
      proxy: `ws://127.0.0.1:${(fake.address() as AddressInfo).port}/tunnel`,
      tcpTo: '127.0.0.1:9',
      liveness: { pingEveryMs: 100, deadAfterMs: 500 },
    });
    try {
      const closed = await Promise.race([tunnel.closed, new Promise<null>((r) => setTimeout(() => r(null), 1500))]);
      assert.equal(closed, null);
    } finally {
      await tunnel.close();
      fake.close();
    }
  });
});

describe('TunnelClient and a proxy that forwards CONNECT', () => {
  for (const protocol of [1, 2] as const) {
    it(`v${protocol}: answers 405 at once instead of waiting forever for a response Node never reports`, async () => {
      let connects = 0;
      const local = createServer((_req, res) => res.end('ok'));
      // A local service that accepts CONNECT (a dev proxy): Node's client has no response to report, nor an error.
      local.on('connect', (_req, socket: import('node:net').Socket) => {
        connects++;
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      });
      await new Promise<void>((r) => local.listen(0, '127.0.0.1', () => r()));
      const fake = new WebSocketServer({ host: '127.0.0.1', port: 0 });
      await once(fake, 'listening');
      const connected = once(fake, 'connection') as Promise<[WebSocket]>;
      const [tunnel, ws] = await Promise.all([
        TunnelClient.connect({ proxy: `ws://127.0.0.1:${(fake.address() as AddressInfo).port}/tunnel`, to: `127.0.0.1:${(local.address() as AddressInfo).port}`, protocol }),
        connected.then(([ws]) => {
          ws.send(protocol === 1 ? JSON.stringify({ type: 'tunnel_ready', tunnelUrl: '', rawPort: 0 }) : encodeReady('', 0));
          return ws;
        }),
      ]);
      try {
        const status = new Promise<number>((resolve) =>
          ws.on('message', (m: Buffer, binary: boolean) => {
            if (!binary) return resolve((JSON.parse(m.toString()) as { status: number }).status);
            if (m[0] === T.RESPONSE) resolve((JSON.parse(m.subarray(6, m.indexOf(0, 6)).toString()) as { status: number }).status);
          }),
        );
        if (protocol === 1) ws.send(JSON.stringify({ type: 'http_request', id: 'c1', method: 'CONNECT', path: '/x', headers: {} }));
        else ws.send(encodeOpen(1, { kind: 'http', method: 'connect', path: '/x', headers: [] }, true));
        const got = await Promise.race([status, new Promise<null>((r) => setTimeout(() => r(null), 3000).unref())]);
        assert.equal(got, 405);
        assert.equal(connects, 0);
      } finally {
        await tunnel.close();
        fake.close();
        local.closeAllConnections();
        local.close();
      }
    });
  }
});

describe('TunnelClient and a tunnel_ready whose tunnelUrl is no URL', () => {
  it('reports it as given, and its subdomain as empty instead of throwing', async () => {
    const fake = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(fake, 'listening');
    fake.on('connection', (ws) => ws.send(JSON.stringify({ type: 'tunnel_ready', tunnelUrl: 'not a url', rawPort: 1 })));
    const tunnel = await TunnelClient.connect({ proxy: `ws://127.0.0.1:${(fake.address() as AddressInfo).port}/tunnel`, tcpTo: '127.0.0.1:9' });
    try {
      assert.equal(tunnel.tunnelUrl, 'not a url');
      assert.equal(tunnel.subdomain, '');
    } finally {
      await tunnel.close();
      fake.close();
    }
  });
});

describe('v2 TunnelClient and a READY with another version than 2', () => {
  const ready = (fields: Record<string, unknown>): Buffer =>
    Buffer.concat([Buffer.from([T.READY, 0, 0, 0, 0, 0]), Buffer.from(JSON.stringify({ type: 'tunnel_ready', tunnelUrl: 'http://0123456789abcdef.tunnel.test', rawPort: 0, ...fields }))]);

  for (const [label, fields] of [
    ['a later version (3)', { version: 3 }],
    ['version 1', { version: 1 }],
    ['no version', {}],
    ['a version that is no number ("2")', { version: '2' }],
  ] as const) {
    it(`${label}: connect rejects with a protocol error and the tunnel closes with 1002`, async () => {
      const fake = new WebSocketServer({ host: '127.0.0.1', port: 0 });
      await once(fake, 'listening');
      const closed = new Promise<number>((resolve) =>
        fake.on('connection', (ws) => {
          ws.on('close', (code) => resolve(code));
          ws.send(ready(fields));
        }),
      );
      try {
        await assert.rejects(
          TunnelClient.connect({ proxy: `ws://127.0.0.1:${(fake.address() as AddressInfo).port}/tunnel`, protocol: 2, liveness: false, readyTimeoutMs: 5000 }),
          /tunnel protocol error: unsupported protocol version .* in READY/,
        );
        assert.equal(await Promise.race([closed, new Promise<null>((r) => setTimeout(() => r(null), 3000).unref())]), 1002);
      } finally {
        for (const c of fake.clients) c.terminate();
        fake.close();
      }
    });
  }

  it('version 2: the tunnel is up and speaks 2', async () => {
    const fake = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(fake, 'listening');
    fake.on('connection', (ws) => ws.send(ready({ version: 2 })));
    const tunnel = await TunnelClient.connect({ proxy: `ws://127.0.0.1:${(fake.address() as AddressInfo).port}/tunnel`, protocol: 2, liveness: false });
    try {
      assert.equal(tunnel.protocol, 2);
    } finally {
      await tunnel.close();
      fake.close();
    }
  });
});
