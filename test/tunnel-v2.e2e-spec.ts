import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { TunnelClient } from '../src/tunnel/client/tunnel-client.js';
import type { V2ClientStream } from '../src/tunnel/v2/client-session.js';
import { MAX_REQUEST_HEADER_FIELDS } from '../src/upgrade/request-target.js';
import { V2_INITIAL_WINDOW, encodeClose, encodeData, encodeResponse } from '../src/tunnel/protocol/v2.js';
import { TunnelService } from '../src/tunnel/tunnel.service.js';
import type { V2Wire } from '../src/tunnel/v2/v2-wire.js';
import { dial, readBytes } from './support/tcp-client.js';
import { startApp, type TestApp } from './support/app.js';
import { echoTarget, randomPayload, sha256, type TestTarget } from './support/targets.js';
import { closed, expectRefusal, openWs } from './support/ws-client.js';
import { TUNNEL_DOMAIN, httpTo, tunnelEnv, waitFor } from './support/tunnel.js';
import { RawV2Tunnel, timedGet } from './tunnel-v2-support.js';
import { within } from './support/within.js';
import { expectCoalescedPongs } from './support/ping-flood.js';
import { Opcode, clientFrame } from './support/ws-frames.js';
import { assertEchoes, attachWebSocketEchoApp, type WebSocketEchoApp } from './support/websocket-echo-app.js';

const MiB = 1024 * 1024;

/** The origin behind the tunnel: HTTP routes for the tests, and a WebSocket echo app. */
interface Origin {
  readonly port: number;
  readonly target: string;
  /** The WebSocket echo app on the same server. */
  readonly app: WebSocketEchoApp;
  /** When the streaming route wrote its second half. */
  secondHalfAt: number;
  close(): Promise<void>;
}

const HALF = randomPayload(512 * 1024);
const HALF2 = randomPayload(512 * 1024);
const BIG = randomPayload(512 * 1024);

async function startOrigin(): Promise<Origin> {
  const origin = { secondHalfAt: 0 } as unknown as Origin & { port: number; target: string; app: WebSocketEchoApp };
  const routes = (req: IncomingMessage, body: Buffer, res: ServerResponse): void => {
    const url = req.url ?? '/';
    if (url === '/stream') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(HALF);
      setTimeout(() => {
        origin.secondHalfAt = Date.now();
        res.end(HALF2);
      }, 1000);
    } else if (url === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('data: one\n\n');
      setTimeout(() => res.write('data: two\n\n'), 300);
      setTimeout(() => res.end('data: three\n\n'), 600);
    } else if (url === '/big') {
      res.setHeader('content-type', 'application/octet-stream');
      res.setHeader('content-length', BIG.length);
      res.end(BIG);
    } else if (url.startsWith('/echo')) {
      res.setHeader('set-cookie', 'session=secret');
      res.setHeader('x-multi', ['one', 'two']);
      res.setHeader('x-sha256', createHash('sha256').update(body).digest('hex'));
      res.setHeader('x-request-headers', JSON.stringify(req.headers));
      res.end(body);
    } else {
      res.statusCode = 404;
      res.end('no such route');
    }
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => routes(req, Buffer.concat(chunks), res));
  });
  origin.app = attachWebSocketEchoApp(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin.port = (server.address() as AddressInfo).port;
  origin.target = `127.0.0.1:${origin.port}`;
  origin.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      origin.app.close();
      server.close(() => resolve());
    });
  return origin;
}

describe('tunnel protocol v2 with the reference client', () => {
  let app: TestApp;
  let origin: Origin;
  let echo: TestTarget;
  let client: TunnelClient;
  let host: string;

  before(async () => {
    app = await startApp(await tunnelEnv({}, 4));
    origin = await startOrigin();
    echo = await echoTarget();
    client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: origin.target, tcpTo: `127.0.0.1:${echo.port}`, protocol: 2 });
    host = `${client.subdomain}.${TUNNEL_DOMAIN}`;
  });
  after(async () => {
    await client.close();
    await app.close();
    await origin.close();
    await echo.close();
  });

  it('speaks v2', () => {
    assert.equal(client.protocol, 2);
    assert.match(client.tunnelUrl, /^http:\/\/[0-9a-f]{16}\.tunnel\.test$/);
    assert.ok(client.rawPort > 0);
  });

  it('POSTs a binary body and gets it back byte-exact; repeated headers stay apart; hygiene both ways', async () => {
    const payload = randomPayload(3 * MiB);
    const res = await httpTo(app.port, host, {
      method: 'POST',
      path: '/echo?x=1',
      body: payload,
      headers: { cookie: 'sid=1', 'x-in': ['a', 'b'], 'content-type': 'application/octet-stream' },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-sha256'], sha256(payload));
    assert.equal(sha256(res.body), sha256(payload));
    assert.equal(res.headers['set-cookie'], undefined);
    assert.equal(res.headers['x-multi'], 'one, two');
    const seen = JSON.parse(res.headers['x-request-headers'] as string) as Record<string, string>;
    assert.equal(seen.cookie, undefined);
    assert.equal(seen['x-in'], 'a, b');
    assert.equal(seen['x-forwarded-host'], host);
    // The origin's Content-Length passes (the body is streamed, not counted).
    assert.equal(res.headers['content-length'], String(payload.length));
  });

  it('a POST without a body or a length reaches the local service with content-length 0, not chunked', async () => {
    const s = await dial(app.port);
    s.write(`POST /echo HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    await once(s, 'close');
    const response = Buffer.concat(chunks).toString('latin1');
    assert.match(response, /^HTTP\/1\.1 200 /);
    const line = /^x-request-headers: (.*)$/im.exec(response);
    assert.ok(line, response);
    const seen = JSON.parse(line[1]!.trim()) as Record<string, string>;
    assert.equal(seen['content-length'], '0');
    assert.equal(seen['transfer-encoding'], undefined);
    assert.equal(seen.host, host);
  });

  it('a chunked upload and a Content-Length download', async () => {
    const payload = randomPayload(700_000);
    const up = await httpTo(app.port, host, { method: 'PUT', path: '/echo', body: payload, chunked: true });
    assert.equal(up.headers['x-sha256'], sha256(payload));
    const down = await httpTo(app.port, host, { path: '/big' });
    assert.equal(down.headers['content-length'], String(BIG.length));
    assert.equal(sha256(down.body), sha256(BIG));
  });

  it('streams: the requester has the first half before the origin sends the second', async () => {
    origin.secondHalfAt = 0;
    const res = await timedGet(app.port, host, '/stream');
    await waitFor(() => res.chunks.reduce((n, c) => n + c.data.length, 0) >= HALF.length, 5000, 'first half');
    const firstHalfAt = Date.now();
    assert.equal(origin.secondHalfAt, 0, 'the second half was not sent yet');
    const body = await res.done;
    assert.ok(origin.secondHalfAt > firstHalfAt);
    assert.equal(sha256(body), sha256(Buffer.concat([HALF, HALF2])));
    assert.equal(res.res.headers['transfer-encoding'], 'chunked');
  });

  it('Server-Sent Events: three events 300 ms apart arrive spaced', async () => {
    const res = await timedGet(app.port, host, '/events');
    assert.equal(res.res.headers['content-type'], 'text/event-stream');
    const body = await res.done;
    assert.equal(body.toString(), 'data: one\n\ndata: two\n\ndata: three\n\n');
    const arrivals = ['one', 'two', 'three'].map((name) => res.chunks.find((c) => c.data.toString().includes(`data: ${name}`))!.at);
    assert.ok(arrivals[1] - arrivals[0] >= 200, `gap ${arrivals[1] - arrivals[0]} ms`);
    assert.ok(arrivals[2] - arrivals[1] >= 200, `gap ${arrivals[2] - arrivals[1]} ms`);
  });

  it('WebSocket echo app: 1 MiB text and binary messages both ways, the origin’s subprotocol, the app’s close code', async () => {
    const ws = await openWs(`ws://127.0.0.1:${app.port}/echo-ws?room=1`, {
      headers: { host, cookie: 'sid=secret', origin: 'https://app.example' },
      protocols: ['x', 'chat'],
    });
    try {
      assert.equal(ws.protocol, 'chat');
      assert.equal(origin.app.lastUpgrade!.headers.cookie, undefined, 'Cookie does not reach the origin');
      assert.equal(origin.app.lastUpgrade!.headers.origin, 'https://app.example');
      assert.equal(origin.app.lastUpgrade!.headers['x-forwarded-host'], host);

      await assertEchoes(ws, 'ü'.repeat(MiB / 2), randomPayload(MiB));
      // The proxy answers the requester's pings itself (they are per hop).
      const pong = within(once(ws, 'pong'), 5000, 'the pong');
      ws.ping(Buffer.from('through'));
      assert.equal(((await pong) as [Buffer])[0].toString(), 'through');
      // A flood of pings while not reading gets the latest answered, not a pong queued per ping.
      await expectCoalescedPongs(ws, 100_000);

      // Small messages in a burst keep their order.
      const got: string[] = [];
      const all = new Promise<void>((resolve) => {
        ws.on('message', (d: Buffer) => {
          got.push(d.toString());
          if (got.length === 200) resolve();
        });
      });
      for (let i = 0; i < 200; i++) ws.send(`m${i}`);
      await all;
      ws.removeAllListeners('message');
      assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => `m${i}`));

      const closing = closed(ws);
      ws.send('close-me');
      assert.deepEqual(await closing, { code: 4321, reason: 'bye from the app' });
    } finally {
      ws.terminate();
    }
  });

  it('takes an upgrade in absolute-form (RFC 9112 §3.2.2): the app sees the origin-form path', async () => {
    const { connect } = await import('node:net');
    const closesBefore = origin.app.closes.length;
    const socket = connect(app.port, '127.0.0.1');
    try {
      socket.write(
        `GET http://${host}/echo-ws?room=abs HTTP/1.1\r\nHost: elsewhere.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
      let head = '';
      await within(
        new Promise<void>((resolve, reject) => {
          socket.on('data', (d: Buffer) => {
            head += d.toString('latin1');
            if (head.includes('\r\n\r\n')) resolve();
          });
          socket.on('error', reject);
        }),
        5000,
        'the answer',
      );
      assert.match(head, /^HTTP\/1\.1 101 /);
      assert.equal(origin.app.lastUpgrade!.url, '/echo-ws?room=abs');
    } finally {
      socket.destroy();
    }
    // Its end reaches the app before the next test counts closes.
    await waitFor(() => origin.app.closes.length > closesBefore, 5000, 'the origin saw the close');
  });

  it('the requester’s close code reaches the app', async () => {
    const before = origin.app.closes.length;
    const ws = await openWs(`ws://127.0.0.1:${app.port}/echo-ws`, { headers: { host } });
    ws.close(4001, 'requester done');
    await closed(ws);
    await waitFor(() => origin.app.closes.length > before, 5000, 'origin close');
    assert.deepEqual(origin.app.closes.at(-1), { code: 4001, reason: 'requester done' });
    await waitFor(() => app.app.get(TunnelService).find(client.subdomain)!.counts().http === 0, 5000, 'stream finished');
  });

  it('a refused upgrade passes the origin’s status, headers and body; a plain 2xx answer becomes 501', async () => {
    const refused = await expectRefusal(`ws://127.0.0.1:${app.port}/forbidden`, { headers: { host } });
    assert.deepEqual(refused, { status: 403, body: 'forbidden' });
    const plain = await expectRefusal(`ws://127.0.0.1:${app.port}/plain`, { headers: { host } });
    assert.equal(plain.status, 501);
  });

  it('a requester that breaks RFC 6455 gets 1002 with the reason, and the local app hears 1002, not 1006', async () => {
    const before = origin.app.closes.length;
    const ws = await openWs(`ws://127.0.0.1:${app.port}/echo-ws`, { headers: { host } });
    const done = closed(ws);
    (ws as unknown as { _socket: Socket })._socket.write(clientFrame(Opcode.BINARY, 'abc', { maskKey: null }));
    assert.deepEqual(await within(done, 5000, 'the requester closed'), { code: 1002, reason: 'Invalid WebSocket frame: MASK must be set' });
    await waitFor(() => origin.app.closes.length > before, 5000, 'the local app closed');
    assert.equal(origin.app.closes.at(-1)!.code, 1002);
  });

  it('raw TCP: echo byte-exact, and half-close works (the echo still arrives after the requester’s FIN)', async () => {
    const s = await dial(client.rawPort);
    const payload = randomPayload(4 * MiB);
    const got = readBytes(s, payload.length);
    s.write(payload);
    assert.equal(sha256(await got), sha256(payload));
    s.destroy();

    const h = await dial(client.rawPort);
    const chunks: Buffer[] = [];
    h.on('data', (c: Buffer) => chunks.push(c));
    h.end('after FIN');
    await once(h, 'close');
    assert.equal(Buffer.concat(chunks).toString(), 'after FIN');
  });

  it('head-of-line: a TCP connection whose reader never reads does not delay another connection on the same tunnel', async () => {
    const stuck = await dial(client.rawPort);
    stuck.pause();
    // Write until the path pushes back for a whole second: every buffer on it
    // is full, however large the kernel lets socket buffers grow.
    const chunk = randomPayload(MiB);
    const sentHash = createHash('sha256');
    let sent = 0;
    let stalled = false;
    while (sent < 512 * MiB) {
      sentHash.update(chunk);
      sent += chunk.length;
      if (stuck.write(chunk)) continue;
      const drained = await Promise.race([once(stuck, 'drain').then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 1000))]);
      if (!drained) {
        stalled = true;
        break;
      }
    }
    assert.ok(stalled, `the stuck connection is held back (${sent / MiB} MiB written)`);

    const s = await dial(client.rawPort);
    const started = Date.now();
    const got = readBytes(s, 4);
    s.write('ping');
    assert.equal((await got).toString(), 'ping');
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 3000, `echo took ${elapsed} ms`);
    s.destroy();

    const wire = app.app.get(TunnelService).find(client.subdomain)!.wire as V2Wire;
    const held = wire.held();
    // The proxy's window (TUNNEL_V2_WINDOW_BYTES, default 1 MiB) bounds what it holds per stream.
    assert.ok(held.inbound <= 1024 * 1024, `inbound held ${held.inbound}`);
    assert.ok(held.outbound <= 2 * V2_INITIAL_WINDOW, `outbound held ${held.outbound}`);
    assert.ok(wire.bufferedAmount <= 2 * MiB, `ws buffer ${wire.bufferedAmount}`);

    // The stuck connection was only paused: once it reads, everything arrives.
    const all = readBytes(stuck, sent);
    stuck.resume();
    assert.equal(sha256(await all), sentHash.digest('hex'));
    stuck.destroy();
  });
});

describe('tunnel protocol v2: a request body sent as tiny chunks', () => {
  it('reaches the service whole, in a frame per read of the requester, not one per chunk', async () => {
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false' }, 1));
    let pieces = 0;
    let got: Buffer | null = null;
    const local = createServer((req, res) => {
      const chunks: Buffer[] = [];
      // The reference client writes each DATA frame as one chunk of its own request: one 'data' here each.
      req.on('data', (c: Buffer) => {
        pieces++;
        chunks.push(c);
      });
      req.on('end', () => {
        got = Buffer.concat(chunks);
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => local.listen(0, '127.0.0.1', resolve));
    const client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: `127.0.0.1:${(local.address() as AddressInfo).port}`, protocol: 2 });
    try {
      const body = randomPayload(20_000);
      const parts: Buffer[] = [Buffer.from(`POST /up HTTP/1.1\r\nHost: ${client.subdomain}.${TUNNEL_DOMAIN}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`)];
      for (let i = 0; i < body.length; i++) parts.push(Buffer.from('1\r\n'), body.subarray(i, i + 1), Buffer.from('\r\n'));
      parts.push(Buffer.from('0\r\n\r\n'));
      const s = await dial(app.port);
      const answer: Buffer[] = [];
      s.on('data', (c: Buffer) => answer.push(c));
      s.write(Buffer.concat(parts));
      await within(once(s, 'close'), 10_000, 'the answer');
      assert.match(Buffer.concat(answer).toString('latin1'), /^HTTP\/1\.1 200 /);
      assert.ok(got !== null && (got as Buffer).equals(body), 'the body arrived whole and in order');
      // 20 000 one-byte chunks in a handful of reads: each chunk a frame would be 20 000 (and a tunnel client
      // holding a paused stream resets it at 16 384 frames).
      assert.ok(pieces < 1000, `the body reached the service in ${pieces} pieces`);
    } finally {
      await client.close();
      await app.close();
      local.closeAllConnections();
      await new Promise<void>((resolve) => local.close(() => resolve()));
    }
  });
});

describe('tunnel protocol v2: request framing cannot be used to smuggle a request to the local service', () => {
  interface Seen {
    readonly method: string;
    readonly url: string;
    readonly headers: IncomingMessage['headers'];
    readonly body: string;
  }
  let app: TestApp;
  let client: TunnelClient;
  let host: string;
  let local: Server;
  const seen: Seen[] = [];
  const smuggled = 'GET /admin HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-For: 127.0.0.1\r\nCookie: session=attacker\r\n\r\n';

  before(async () => {
    app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false' }, 1));
    local = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('latin1') });
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => local.listen(0, '127.0.0.1', resolve));
    client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: `127.0.0.1:${(local.address() as AddressInfo).port}`, protocol: 2 });
    host = `${client.subdomain}.${TUNNEL_DOMAIN}`;
  });
  after(async () => {
    await client.close();
    await app.close();
    local.closeAllConnections();
    await new Promise<void>((resolve) => local.close(() => resolve()));
  });

  /** Sends `head` + `body` raw, reads the whole answer (the request says Connection: close). */
  async function raw(head: string, body = ''): Promise<string> {
    const s = await dial(app.port);
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.write(head + body);
    await once(s, 'close');
    return Buffer.concat(chunks).toString('latin1');
  }

  it('a GET with a chunked body reaches the service as one request, its body intact', async () => {
    seen.length = 0;
    const chunked = `${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`;
    const answer = await raw(`GET /a HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`, chunked);
    assert.match(answer, /^HTTP\/1\.1 200 /);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(seen.map((r) => `${r.method} ${r.url}`), ['GET /a'], 'one request, no second one made of the body');
    assert.equal(seen[0]!.body, smuggled);
  });

  it('501 for a body with a transfer coding besides chunked, 400 when chunked is not the final coding; neither reaches the service', async () => {
    seen.length = 0;
    const chunked = `${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`;
    // On one line, and on two (which Node joins).
    for (const te of ['Transfer-Encoding: gzip, chunked\r\n', 'Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n']) {
      const answer = await raw(`POST /coded HTTP/1.1\r\nHost: ${host}\r\n${te}Connection: close\r\n\r\n`, chunked);
      assert.match(answer, /^HTTP\/1\.1 501 Not Implemented\r\n[^]*\r\n\r\ntransfer coding not supported\n$/, te);
    }
    // Chunked not the final coding: the body's length cannot be determined, 400 (RFC 9112 §6.3), not 501.
    for (const te of ['Transfer-Encoding: gzip\r\n', 'Transfer-Encoding: chunked;q=1\r\n']) {
      const answer = await raw(`POST /unframed HTTP/1.1\r\nHost: ${host}\r\n${te}Connection: close\r\n\r\n`, chunked);
      assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/, te);
    }
    // Chunked alone, in any case, still goes through; so does a list with empty elements (RFC 9110 §5.6.1).
    assert.match(await raw(`POST /plain HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n`, chunked), /^HTTP\/1\.1 200 /);
    assert.match(await raw(`POST /listed HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: , chunked\r\nConnection: close\r\n\r\n`, chunked), /^HTTP\/1\.1 200 /);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(seen.map((r) => `${r.method} ${r.url}`), ['POST /plain', 'POST /listed']);
  });

  it('a Connection header naming Content-Length or Host removes neither', async () => {
    seen.length = 0;
    const answer = await raw(
      `GET /b HTTP/1.1\r\nHost: ${host}\r\nContent-Length: ${smuggled.length}\r\nConnection: close, content-length, host\r\n\r\n`,
      smuggled,
    );
    assert.match(answer, /^HTTP\/1\.1 200 /);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(seen.map((r) => `${r.method} ${r.url}`), ['GET /b'], 'one request, no second one made of the body');
    assert.equal(seen[0]!.body, smuggled);
    assert.equal(seen[0]!.headers['content-length'], String(smuggled.length));
    assert.equal(seen[0]!.headers.host, host, 'the requester’s Host, not the local service’s');
  });

  it('431 for a head with more than MAX_REQUEST_HEADER_FIELDS fields, so the forwarding headers always fit', async () => {
    seen.length = 0;
    const padding = Array.from({ length: MAX_REQUEST_HEADER_FIELDS + 1 }, (_, i) => `x-pad-${i}: 1\r\n`).join('');
    const answer = await raw(`GET /c HTTP/1.1\r\nHost: ${host}\r\n${padding}Connection: close\r\n\r\n`);
    assert.match(answer, /^HTTP\/1\.1 431 /);
    assert.match(answer, /too many header fields/);
    const upgrade = await raw(
      `GET /ws HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${padding}\r\n`,
    );
    assert.match(upgrade, /^HTTP\/1\.1 431 /);
    const fits = Array.from({ length: MAX_REQUEST_HEADER_FIELDS - 2 }, (_, i) => `x-pad-${i}: 1\r\n`).join('');
    assert.match(await raw(`GET /d HTTP/1.1\r\nHost: ${host}\r\n${fits}Connection: close\r\n\r\n`), /^HTTP\/1\.1 200 /);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.headers['x-forwarded-host'], host);
    assert.equal(seen[0]!.headers['x-forwarded-for'], '127.0.0.1');
  });
});

describe('tunnel protocol v2: WebSocket limits and tunnel end', () => {
  it('429 beyond MAX_TUNNEL_HTTP_PER_IP open WebSockets; 1001 when the tunnel ends', async () => {
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false', MAX_TUNNEL_HTTP_PER_IP: '2' }, 2));
    const origin = await startOrigin();
    const client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: origin.target, protocol: 2 });
    const host = `${client.subdomain}.${TUNNEL_DOMAIN}`;
    try {
      const a = await openWs(`ws://127.0.0.1:${app.port}/echo-ws`, { headers: { host } });
      const b = await openWs(`ws://127.0.0.1:${app.port}/echo-ws`, { headers: { host } });
      assert.equal((await expectRefusal(`ws://127.0.0.1:${app.port}/echo-ws`, { headers: { host } })).status, 429);
      a.close(1000);
      await closed(a);
      await waitFor(async () => {
        try {
          (await openWs(`ws://127.0.0.1:${app.port}/echo-ws`, { headers: { host } })).terminate();
          return true;
        } catch {
          return false;
        }
      }, 5000, 'slot back');
      const bClosed = closed(b);
      await client.close();
      assert.equal((await bClosed).code, 1001);
    } finally {
      await client.close();
      await app.close();
      await origin.close();
    }
  });

  it('504 when the client does not answer an upgrade within TUNNEL_RESPONSE_TIMEOUT_MS', async () => {
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false', TUNNEL_RESPONSE_TIMEOUT_MS: '300' }, 2));
    // A local service that accepts the connection and never answers.
    const silent = createServer(() => undefined);
    const held: Socket[] = [];
    silent.on('upgrade', (_req: IncomingMessage, socket: Socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: `127.0.0.1:${(silent.address() as AddressInfo).port}`, protocol: 2 });
    try {
      const r = await expectRefusal(`ws://127.0.0.1:${app.port}/x`, { headers: { host: `${client.subdomain}.${TUNNEL_DOMAIN}` } });
      assert.deepEqual(r, { status: 504, body: 'tunnel response timeout' });
    } finally {
      await client.close();
      await app.close();
      for (const s of held) s.destroy();
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});

describe('tunnel protocol negotiation from the reference client', () => {
  it('asks for v2 and follows a proxy that answers v1', async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await once(wss, 'listening');
    let url = '';
    wss.on('connection', (ws, req) => {
      url = req.url ?? '';
      ws.send('{"type":"tunnel_ready","tunnelUrl":"","rawPort":0}');
    });
    try {
      const c = await TunnelClient.connect({ proxy: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/tunnel`, protocol: 2 });
      assert.equal(c.protocol, 1);
      assert.match(url, /[?&]v=2(&|$)/);
      await c.close();
    } finally {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
    }
  });

  it('protocol 1 still speaks v1 (WebSocket upgrades get 501)', async () => {
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false' }, 2));
    const origin = await startOrigin();
    const c = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: origin.target, protocol: 1 });
    try {
      assert.equal(c.protocol, 1);
      const host = `${c.subdomain}.${TUNNEL_DOMAIN}`;
      const res = await httpTo(app.port, host, { method: 'POST', path: '/echo', body: 'v1 body' });
      assert.equal(res.body.toString(), 'v1 body');
      assert.equal((await expectRefusal(`ws://127.0.0.1:${app.port}/echo-ws`, { headers: { host } })).status, 501);
    } finally {
      await c.close();
      await app.close();
      await origin.close();
    }
  });
});

describe('raw TCP over v2: a requester whose connection fails mid-upload', () => {
  it('reaches the local service of the reference client as a reset, not a FIN that would pass the upload for whole', async () => {
    const app = await startApp(await tunnelEnv({}, 2));
    let resolveEnd!: (e: { how: string; text: string }) => void;
    const serviceEnd = new Promise<{ how: string; text: string }>((r) => (resolveEnd = r));
    let got = '';
    const service = createNetServer({ allowHalfOpen: true }, (s) => {
      s.on('data', (c: Buffer) => (got += c.toString()));
      s.on('end', () => resolveEnd({ how: 'FIN', text: got }));
      s.on('error', (err: NodeJS.ErrnoException) => resolveEnd({ how: err.code ?? 'error', text: got }));
    });
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve));
    const client = await TunnelClient.connect({
      proxy: `${app.wsUrl}/tunnel`,
      to: '127.0.0.1:1',
      tcpTo: `127.0.0.1:${(service.address() as AddressInfo).port}`,
      protocol: 2,
    });
    try {
      const requester = await dial(client.rawPort);
      requester.on('error', () => undefined);
      requester.write('the first half');
      await waitFor(() => got === 'the first half', 5000, 'the first half at the service');
      requester.resetAndDestroy();
      assert.deepEqual(await within(serviceEnd, 5000, 'the service connection ended'), { how: 'ECONNRESET', text: 'the first half' });
    } finally {
      await client.close();
      await app.close();
      service.close();
    }
  });
});

describe('raw TCP over v2: a requester that half-closed', () => {
  it('is dropped once the client has sent nothing for TUNNEL_REQUESTER_STALL_MS, and its connection slot comes back', async () => {
    const app = await startApp(await tunnelEnv({ TUNNEL_REQUESTER_STALL_MS: '1000', MAX_TUNNEL_TCP_CONNS_PER_TUNNEL: '1' }, 2));
    // A local service that greets every connection and never ends its side, whatever the requester does.
    const service = createNetServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => undefined);
      s.write('hello');
    });
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve));
    const client = await TunnelClient.connect({
      proxy: `${app.wsUrl}/tunnel`,
      to: '127.0.0.1:1',
      tcpTo: `127.0.0.1:${(service.address() as AddressInfo).port}`,
      protocol: 2,
    });
    try {
      const first = await dial(client.rawPort);
      const firstError = new Promise<string | undefined>((resolve) => first.on('error', (err: NodeJS.ErrnoException) => resolve(err.code)));
      assert.equal((await readBytes(first, 5)).toString(), 'hello');
      first.end();
      const dropped = new Promise((resolve) => first.once('close', resolve));
      // The slot is held while the requester waits for an answer…
      const refusedMeanwhile = await dial(client.rawPort);
      refusedMeanwhile.on('error', () => undefined);
      await once(refusedMeanwhile, 'close');
      // …and comes back once the client has been silent for the bound.
      await within(dropped, 10_000, 'the half-closed requester dropped');
      // The client never ended its side: a reset, not a FIN that would pass "hello" for the whole answer.
      assert.equal(await within(firstError, 1000, 'the reset'), 'ECONNRESET');
      const second = await dial(client.rawPort);
      assert.equal((await readBytes(second, 5)).toString(), 'hello', 'a new requester is carried');
      second.destroy();
    } finally {
      await client.close();
      await app.close();
      service.close();
    }
  });
});

/**
 * The check the two "last bytes waiting for credit" tests share, once the requester's connection has closed
 * with the tail of `sent` still waiting for the stream's credit: the stream is not reset meanwhile (300 ms),
 * and once the client grants credit the whole of `sent` arrives (`got`), then the stream's clean `end`
 * (`ended`), not a RESET.
 */
async function expectTailOnCredit(
  tunnel: RawV2Tunnel,
  id: number,
  stream: { got: () => Buffer; sent: Buffer; end: 'END' | 'CLOSE'; ended: () => boolean },
): Promise<void> {
  const reset = (): boolean => tunnel.frames.some((f) => f.type === 'reset' && f.stream === id);
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(!reset(), 'the stream was reset when the requester’s connection closed');
  tunnel.grant(id, 1024 * 1024);
  await waitFor(() => stream.ended() || reset(), 5000, 'the end of the stream');
  assert.ok(stream.ended(), `${stream.end}, not RESET`);
  assert.equal(sha256(stream.got()), sha256(stream.sent), 'every byte, in order');
}

describe('raw TCP over v2: the last bytes of a connection that closed while they waited for credit', () => {
  it('reach the client once it grants credit, then END: the close neither resets the stream nor drops them', async () => {
    const app = await startApp(await tunnelEnv({}, 2));
    const { tunnel, ready } = await RawV2Tunnel.open(app.wsUrl);
    // Half-open allowed: the requester goes on sending after the client's FIN.
    const s = connect({ port: ready.ready.rawPort, host: '127.0.0.1', allowHalfOpen: true });
    try {
      s.on('error', () => undefined);
      await once(s, 'connect');
      const open = await tunnel.nextOpen();
      const id = open.stream;
      // The local service closes its side first: the requester reads the FIN.
      const requesterSawEnd = once(s, 'end');
      s.resume();
      tunnel.send(encodeData(id, new Uint8Array(0), true));
      await within(requesterSawEnd, 5000, 'the client’s END at the requester');
      // Then the requester uploads more than the credit (the initial window: the raw client grants nothing) and ends.
      const payload = randomPayload(V2_INITIAL_WINDOW + 1000);
      const closed = once(s, 'close');
      s.end(payload);
      await within(closed, 5000, 'the requester’s connection closed both ways');
      await waitFor(() => tunnel.dataFor(id).length === V2_INITIAL_WINDOW, 5000, 'the window’s worth at the client');
      await expectTailOnCredit(tunnel, id, { got: () => tunnel.dataFor(id), sent: payload, end: 'END', ended: () => tunnel.ended(id) });
    } finally {
      s.destroy();
      await tunnel.close();
      await app.close();
    }
  });
});

describe('a requester WebSocket that answers the app’s close while its last message waits for credit', () => {
  it('gets that message to the app once the client grants credit, then its CLOSE: the close neither resets the stream nor drops it', async () => {
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false' }, 2));
    const { tunnel, ready } = await RawV2Tunnel.open(app.wsUrl);
    const requester = new WebSocket(`ws://127.0.0.1:${app.port}/`, { headers: { host: new URL(ready.ready.tunnelUrl).host }, perMessageDeflate: false });
    try {
      requester.on('error', () => undefined);
      const open = await tunnel.nextOpen();
      const id = open.stream;
      tunnel.send(encodeResponse(id, { status: 101, headers: [] }));
      await within(once(requester, 'open'), 5000, 'the requester’s WebSocket open');
      // A message larger than the stream's credit (the raw client grants nothing): its tail waits.
      const message = randomPayload(V2_INITIAL_WINDOW + 1000);
      requester.send(message);
      const got = (): Buffer => Buffer.concat(tunnel.frames.filter((f) => f.type === 'message' && f.stream === id).map((f) => (f as { payload: Uint8Array }).payload));
      await waitFor(() => got().length === V2_INITIAL_WINDOW, 5000, 'the window’s worth at the app');
      // The app closes first; the requester answers the Close and its connection closes.
      const requesterClosed = once(requester, 'close');
      tunnel.send(encodeClose(id, 1000, 'app done'));
      await within(requesterClosed, 5000, 'the requester’s close');
      await expectTailOnCredit(tunnel, id, { got, sent: message, end: 'CLOSE', ended: () => tunnel.frames.some((f) => f.type === 'close' && f.stream === id) });
    } finally {
      requester.terminate();
      await tunnel.close();
      await app.close();
    }
  });
});

describe('a tunnel whose client stops answering pings', () => {
  it("ends as keepalive's doing (1006, keepalive timeout), not as a client that left", async () => {
    const { WsproxyEvents } = await import('../src/common/events.js');
    const { NO_PONG_REASON } = await import('../src/upgrade/keepalive.service.js');
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false', PING_INTERVAL_MS: '1000' }));
    try {
      const ended = new Promise<{ closeCode: number; closeReason: string }>((resolve) => app.app.get(WsproxyEvents).once('tunnel.closed', resolve));
      const silent = await openWs(`${app.wsUrl}/tunnel?v=2`, { autoPong: false });
      const { code } = await within(closed(silent), 6000, 'terminated');
      assert.equal(code, 1006);
      const end = await within(ended, 2000, 'tunnel.closed');
      assert.deepEqual([end.closeCode, end.closeReason], [1006, NO_PONG_REASON]);
    } finally {
      await app.close();
    }
  });
});

describe("a requester's WebSocket paused for a stream without credit", () => {
  it('reads on to the close handshake when its tunnel ends: the requester is let go at once, not at the close timeout', async () => {
    const origin = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await once(origin, 'listening');
    // The app reads nothing: the stream's credit runs out and the proxy stops reading the requester.
    origin.on('connection', (ws) => {
      ws.on('error', () => undefined);
      (ws as unknown as { _socket: Socket })._socket.pause();
    });
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false' }));
    const client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: `127.0.0.1:${(origin.address() as AddressInfo).port}`, protocol: 2 });
    try {
      const host = new URL(client.tunnelUrl).host;
      const ws = await openWs(`ws://127.0.0.1:${app.port}/`, { headers: { host } });
      const chunk = randomPayload(64 * 1024);
      for (let i = 0; i < 512; i++) ws.send(chunk);
      await waitFor(() => ws.bufferedAmount > 0, 5000, 'the proxy stops reading the requester');
      await new Promise((r) => setTimeout(r, 500));
      const done = closed(ws);
      await client.close();
      const { code } = await within(done, 5000, 'the requester let go');
      assert.equal(code, 1001);
    } finally {
      await client.close();
      await app.close();
      for (const c of origin.clients) c.terminate();
      await new Promise<void>((resolve) => origin.close(() => resolve()));
    }
  });

  it("reads on to the close handshake when the app closes first: the requester is let go at once, not at the close timeout", async () => {
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false' }));
    const client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: '127.0.0.1:9', protocol: 2 });
    // The app accepts, then takes nothing more (no credit): the proxy stops reading the requester.
    let appStream: V2ClientStream | null = null;
    (client as unknown as { v2: { services: { websocket: (stream: V2ClientStream) => void } } }).v2.services.websocket = (stream) => {
      appStream = stream;
      stream.onmessage = () => undefined;
      stream.respond(101, []);
      stream.pause();
    };
    try {
      const host = new URL(client.tunnelUrl).host;
      const ws = await openWs(`ws://127.0.0.1:${app.port}/`, { headers: { host } });
      const chunk = randomPayload(64 * 1024);
      for (let i = 0; i < 512; i++) ws.send(chunk);
      await waitFor(() => ws.bufferedAmount > 0, 5000, 'the proxy stops reading the requester');
      await new Promise((r) => setTimeout(r, 500));
      const done = closed(ws);
      // The app closes its WebSocket: the stream stays open until the requester answers.
      appStream!.close(1000, 'app done');
      const { code, reason } = await within(done, 5000, 'the requester let go');
      assert.equal(code, 1000);
      assert.equal(reason, 'app done');
    } finally {
      await client.close();
      await app.close();
    }
  });
});

describe("a requester's WebSocket whose app closes first, the stream with credit", () => {
  it('still carries what the requester sent before it saw the close (the proxy side is MESSAGE* then CLOSE), as a direct connection would', async () => {
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false' }));
    const client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: '127.0.0.1:9', protocol: 2 });
    // The app accepts, closes on the requester's first message, and counts the messages that still come.
    let afterClose = 0;
    (client as unknown as { v2: { services: { websocket: (stream: V2ClientStream) => void } } }).v2.services.websocket = (stream) => {
      let closing = false;
      stream.onmessage = (_chunk, _binary, fin) => {
        if (closing) {
          if (fin) afterClose++;
          return;
        }
        closing = true;
        stream.close(1000, 'app done');
      };
      stream.respond(101, []);
    };
    try {
      const host = new URL(client.tunnelUrl).host;
      const ws = await openWs(`ws://127.0.0.1:${app.port}/`, { headers: { host } });
      const done = closed(ws);
      ws.send('first');
      // Sent until the app's close frame arrives: every one of these went out before the requester saw it.
      let sent = 0;
      await new Promise<void>((resolve) => {
        const tick = (): void => {
          if (ws.readyState !== WebSocket.OPEN) return resolve();
          ws.send(Buffer.of(sent++ & 0xff));
          setImmediate(tick);
        };
        tick();
      });
      const { code } = await within(done, 5000, 'the close handshake');
      assert.equal(code, 1000);
      await waitFor(() => afterClose >= sent, 2000, `${sent} messages sent before the close was seen reach the app`).catch(() => undefined);
      assert.ok(sent > 0);
      assert.equal(afterClose, sent);
    } finally {
      await client.close();
      await app.close();
    }
  });
});
