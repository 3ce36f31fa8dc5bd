/**
 * The reference tunnel client (v1) against a proxy that sends what the real
 * one never does: a fake `/tunnel` endpoint on loopback.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { TunnelClient, v1ClientMaxMessageBytes } from '../src/tunnel/client/tunnel-client.js';
import { T, V2_MAX_FRAME_BYTES, encodeOpen, encodeReady } from '../src/tunnel/protocol/v2.js';
import { Opcode, frameHeader } from './support/ws-frames.js';

/** A test's teardown: the client's tunnel, then the fake `/tunnel` endpoint, then the local service and its kept-alive connections. */
async function closeAll(tunnel: TunnelClient, fake: WebSocketServer, local: Server): Promise<void> {
  await tunnel.close();
  fake.close();
  local.closeAllConnections();
  local.close();
}

/**
 * Listens `local` on loopback and connects the reference client (speaking `protocol`, or its default) to it through
 * a fake `/tunnel` endpoint that sends `ready` as the client connects.
 */
async function connectThroughFake(local: Server, ready: string | Uint8Array, protocol?: 1 | 2): Promise<{ tunnel: TunnelClient; ws: WebSocket; fake: WebSocketServer }> {
  await new Promise<void>((r) => local.listen(0, '127.0.0.1', () => r()));
  const fake = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(fake, 'listening');
  const connected = once(fake, 'connection') as Promise<[WebSocket]>;
  const proxy = `ws://127.0.0.1:${(fake.address() as AddressInfo).port}/tunnel`;
  const to = `127.0.0.1:${(local.address() as AddressInfo).port}`;
  const [tunnel, ws] = await Promise.all([
    TunnelClient.connect(protocol === undefined ? { proxy, to } : { proxy, to, protocol }),
    connected.then(([ws]) => {
      ws.send(ready);
      return ws;
    }),
  ]);
  return { tunnel, ws, fake };
}

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
    const { tunnel, ws, fake } = await connectThroughFake(local, JSON.stringify({ type: 'tunnel_ready', tunnelUrl: 'http://0123456789abcdef.tunnel.test', rawPort: 0 }));
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
      await closeAll(tunnel, fake, local);
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
    const ready = protocol === 1 ? JSON.stringify({ type: 'tunnel_ready', tunnelUrl: 'http://0123456789abcdef.tunnel.test', rawPort: 0 }) : encodeReady('http://0123456789abcdef.tunnel.test', 0);
    const { tunnel, ws, fake } = await connectThroughFake(local, ready, protocol);
    try {
      await run(ws, seen);
    } finally {
      await closeAll(tunnel, fake, local);
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
      const { tunnel, ws, fake } = await connectThroughFake(local, protocol === 1 ? JSON.stringify({ type: 'tunnel_ready', tunnelUrl: '', rawPort: 0 }) : encodeReady('', 0), protocol);
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
        await closeAll(tunnel, fake, local);
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

describe('TunnelClient and a proxy that sends an oversized message', () => {
  const MiB = 1024 * 1024;
  const v1Ready = JSON.stringify({ type: 'tunnel_ready', tunnelUrl: 'http://0123456789abcdef.tunnel.test', rawPort: 0 });
  const v2Ready = (): Uint8Array => encodeReady('http://0123456789abcdef.tunnel.test', 0);

  async function run(protocol: 1 | 2, ready: string | Uint8Array, message: string | Buffer, options: { maxRequestBodyBytes?: number } = {}) {
    const fake = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 64 * MiB });
    await once(fake, 'listening');
    const replies: string[] = [];
    const peer = new Promise<number>((resolve) =>
      fake.on('connection', (ws) => {
        ws.on('close', (code) => resolve(code));
        ws.on('message', (m: Buffer) => replies.push(m.subarray(0, 40).toString()));
        ws.send(ready);
        setTimeout(() => ws.send(message), 50);
      }),
    );
    const tunnel = await TunnelClient.connect({ proxy: `ws://127.0.0.1:${(fake.address() as AddressInfo).port}/tunnel`, protocol, liveness: false, ...options });
    const closed = await Promise.race([tunnel.closed, new Promise<null>((r) => setTimeout(() => r(null), 3000).unref())]);
    const peerCode = closed ? await peer : null;
    await tunnel.close();
    for (const c of fake.clients) c.terminate();
    fake.close();
    return { closed, peerCode, replies };
  }
  const httpRequest = (bodyBytes: number): string =>
    JSON.stringify({ type: 'http_request', id: 'a1', method: 'POST', path: '/', headers: {}, body: Buffer.alloc(bodyBytes, 0x42).toString('base64'), bodyEncoding: 'base64' });

  it('v2: a message over one frame (V2_MAX_FRAME_BYTES) closes the tunnel with 1009, reported by closed', async () => {
    const r = await run(2, v2Ready(), Buffer.alloc(V2_MAX_FRAME_BYTES + 1));
    assert.deepEqual(r.closed, { code: 1009, reason: 'Max payload size exceeded' });
    assert.equal(r.peerCode, 1009);
  });

  it('v1: a message over what a 10 MiB request body takes closes the tunnel with 1009', async () => {
    const r = await run(1, v1Ready, httpRequest(11 * MiB));
    assert.equal(r.closed?.code, 1009);
    assert.equal(r.peerCode, 1009);
  });

  it('v1: a 9 MiB request body is taken (answered), also when v2 was asked and the proxy answered v1', async () => {
    for (const protocol of [1, 2] as const) {
      const r = await run(protocol, v1Ready, httpRequest(9 * MiB));
      assert.equal(r.closed, null, `protocol ${protocol}: still up`);
      assert.ok(r.replies.some((m) => m.includes('http_response')), `protocol ${protocol}: answered`);
    }
  });

  it('v1: maxRequestBodyBytes raises the bound for a proxy with a larger TUNNEL_MAX_BODY_BYTES', async () => {
    const r = await run(1, v1Ready, httpRequest(11 * MiB), { maxRequestBodyBytes: 12 * MiB });
    assert.equal(r.closed, null);
    assert.throws(() => v1ClientMaxMessageBytes(Number.NaN), RangeError);
  });
});

describe('TunnelClient and a proxy that never answers its 1009', () => {
  it('closed still reports 1009 with the reason (not 1006), within the 2 s grace rather than ws’s 30 s', async () => {
    // A bare TCP "proxy": completes the handshake, sends READY and the header of a 2 MiB frame, then never reads or closes.
    const sockets: Socket[] = [];
    const fake = createNetServer((socket) => {
      sockets.push(socket);
      socket.once('data', (head: Buffer) => {
        const key = /sec-websocket-key: *(\S+)/i.exec(head.toString())![1];
        const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
        const ready = encodeReady('http://0123456789abcdef.tunnel.test', 0);
        // A server's frames are unmasked.
        socket.write(Buffer.concat([frameHeader({ opcode: Opcode.BINARY, length: ready.length, maskKey: null }), ready]));
        const big = frameHeader({ opcode: Opcode.BINARY, length: 2 * 1024 * 1024, maskKey: null });
        setTimeout(() => socket.write(big), 50);
        socket.pause();
      });
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', () => r()));
    try {
      const tunnel = await TunnelClient.connect({ proxy: `ws://127.0.0.1:${(fake.address() as AddressInfo).port}/tunnel`, protocol: 2, liveness: false });
      const started = Date.now();
      const closed = await Promise.race([tunnel.closed, new Promise<null>((r) => setTimeout(() => r(null), 10_000).unref())]);
      assert.deepEqual(closed, { code: 1009, reason: 'Max payload size exceeded' });
      assert.ok(Date.now() - started < 5000, `closed after ${Date.now() - started} ms`);
    } finally {
      for (const s of sockets) s.destroy();
      fake.close();
    }
  });
});
