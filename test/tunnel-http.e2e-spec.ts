import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { createServer } from 'node:http';
import { RawV2Tunnel } from './tunnel-v2-support.js';
import { UPGRADE_HEADERS, rawExchange, rawRequest, writeThenReset } from './support/raw-http.js';
import { TunnelClient } from '../src/tunnel/client/tunnel-client.js';
import { TunnelService } from '../src/tunnel/tunnel.service.js';
import { V1Wire } from '../src/tunnel/v1/v1-wire.js';
import { TunnelHttpRouter } from '../src/tunnel/http/tunnel-http.router.js';
import { within } from './support/within.js';
import { startApp, type TestApp } from './support/app.js';
import { randomPayload } from './support/targets.js';
import { expectCloseRefusal, expectRefusal } from './support/ws-client.js';
import {
  RawTunnel,
  TUNNEL_DOMAIN,
  httpTo,
  startHttpService,
  subdomainOf,
  tunnelEnv,
  waitFor,
  type HttpService,
} from './support/tunnel.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A local service that answers with what it received, as JSON, plus a few headers. */
async function echoService(): Promise<HttpService & { last: { headers: Record<string, string | string[] | undefined>; rawHeaders: string[] } | null }> {
  const svc = Object.assign(
    await startHttpService((req, body, res) => {
      svc.last = { headers: req.headers, rawHeaders: req.rawHeaders };
      if (req.url?.startsWith('/binary')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-sha256': sha(body) });
        res.end(body);
        return;
      }
      res.setHeader('x-multi', ['one', 'two']);
      res.setHeader('set-cookie', ['session=secret; Path=/']);
      res.setHeader('access-control-allow-origin', '*');
      res.setHeader('x-frame-options', 'DENY');
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyLength: body.length }));
    }),
    { last: null as { headers: Record<string, string | string[] | undefined>; rawHeaders: string[] } | null },
  );
  return svc;
}

describe('tunnel HTTP through a subdomain (reference client)', () => {
  let app: TestApp;
  let svc: Awaited<ReturnType<typeof echoService>>;
  let client: TunnelClient;
  let host: string;

  before(async () => {
    app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false' }));
    svc = await echoService();
    client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: svc.target });
    host = `${client.subdomain}.${TUNNEL_DOMAIN}`;
  });
  after(async () => {
    await client.close();
    await app.close();
    await svc.close();
  });

  it('announces an http URL with a 16-hex subdomain and rawPort 0 when TCP tunnels are off', () => {
    assert.match(client.tunnelUrl, /^http:\/\/[0-9a-f]{16}\.tunnel\.test$/);
    assert.equal(client.rawPort, 0);
  });

  it('forwards a GET with path and query', async () => {
    const res = await httpTo(app.port, host, { path: '/api?q=1&r=%20x' });
    assert.equal(res.status, 201);
    const echoed = JSON.parse(res.body.toString()) as { method: string; url: string; bodyLength: number };
    assert.equal(echoed.method, 'GET');
    assert.equal(echoed.url, '/api?q=1&r=%20x');
    assert.equal(echoed.bodyLength, 0);
    assert.equal(res.headers['content-length'], String(res.body.length));
  });

  it('forwards a POST with a binary body byte-exactly, both ways', async () => {
    const payload = randomPayload(512 * 1024);
    const res = await httpTo(app.port, host, { method: 'POST', path: '/binary', body: payload, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-sha256'], sha(payload));
    assert.equal(sha(res.body), sha(payload));
    assert.equal(res.headers['content-length'], String(payload.length));
  });

  it('forwards a chunked POST body', async () => {
    const payload = randomPayload(100_000);
    const res = await httpTo(app.port, host, { method: 'POST', path: '/binary', body: payload, chunked: true });
    assert.equal(res.status, 200);
    assert.equal(sha(res.body), sha(payload));
  });

  it('joins repeated request headers with ", " and passes repeated response headers', async () => {
    const res = await httpTo(app.port, host, { headers: { 'x-multi-in': ['a', 'b'], accept: ['text/html', 'application/json'] } });
    assert.equal(svc.last?.headers['x-multi-in'], 'a, b');
    assert.equal(svc.last?.headers.accept, 'text/html, application/json');
    assert.equal(res.headers['x-multi'], 'one, two');
  });

  it('strips credentials, hop-by-hop and spoofed forwarding headers towards the client, and sets X-Forwarded-*', async () => {
    await httpTo(app.port, `${host}:8443`, {
      headers: {
        cookie: 'sid=1',
        authorization: 'Bearer secret',
        'proxy-authorization': 'Basic x',
        connection: 'keep-alive, x-hop',
        'x-hop': 'must go',
        'keep-alive': 'timeout=5',
        te: 'trailers',
        'x-forwarded-for': '6.6.6.6',
        'x-forwarded-host': 'evil.example',
        forwarded: 'for=6.6.6.6',
        'x-real-ip': '6.6.6.6',
        'x-kept': 'yes',
      },
    });
    const h = svc.last!.headers;
    for (const name of ['cookie', 'authorization', 'proxy-authorization', 'x-hop', 'keep-alive', 'te', 'forwarded', 'x-real-ip']) {
      assert.equal(h[name], undefined, `${name} must be stripped`);
    }
    assert.equal(h['x-kept'], 'yes');
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.equal(h['x-forwarded-host'], `${host}:8443`);
    assert.equal(h.host, `${host}:8443`);
  });

  it('strips Set-Cookie, CORS and framing headers from the response', async () => {
    const res = await httpTo(app.port, host);
    assert.equal(res.status, 201);
    assert.equal(res.headers['set-cookie'], undefined);
    assert.equal(res.headers['access-control-allow-origin'], undefined);
    assert.equal(res.headers['x-frame-options'], undefined);
    assert.equal(res.headers['content-type'], 'application/json');
  });

  it('matches Host case-insensitively, ignoring a port and one trailing dot', async () => {
    for (const h of [host.toUpperCase(), `${host}.`, `${host}:80`, `${host.toUpperCase()}.:1234`]) {
      const res = await httpTo(app.port, h);
      assert.equal(res.status, 201, `Host ${h}`);
    }
  });

  it('404s other names under the tunnel domain without reaching the service or the app routes', async () => {
    const before = svc.requests;
    const cases: [string, string, string][] = [
      [`x.${host}`, '/', 'not found'],
      [`${client.subdomain.slice(1)}.${TUNNEL_DOMAIN}`, '/', 'not found'],
      [`${client.subdomain}0.${TUNNEL_DOMAIN}`, '/', 'not found'],
      [`${client.subdomain}..${TUNNEL_DOMAIN}`, '/', 'not found'],
      [`0123456789abcdef.${TUNNEL_DOMAIN}`, '/', 'tunnel not found'],
      [`0123456789abcdef.${TUNNEL_DOMAIN}`, '/health', 'tunnel not found'],
      [`x.${host}`, '/health', 'not found'],
      [`0123456789abcdef.${TUNNEL_DOMAIN}`, '/tunnel', 'tunnel not found'],
    ];
    for (const [h, path, text] of cases) {
      const res = await httpTo(app.port, h, { path });
      assert.equal(res.status, 404, `Host ${h} ${path}`);
      assert.equal(res.body.toString().trim(), text, `Host ${h} ${path}`);
    }
    assert.equal(svc.requests, before);
  });

  it('routes a live tunnel Host to the tunnel even for /health', async () => {
    const res = await httpTo(app.port, host, { path: '/health' });
    assert.equal(res.status, 201);
    assert.equal((JSON.parse(res.body.toString()) as { url: string }).url, '/health');
  });

  it('does not treat <sub>.<domain>.evil.com as a tunnel host', async () => {
    const before = svc.requests;
    const res = await httpTo(app.port, `${host}.evil.com`, { path: '/health' });
    assert.equal(res.status, 200, 'the app’s own /health answers');
    const other = await httpTo(app.port, `${host}.evil.com`, { path: '/' });
    assert.equal(other.status, 404);
    assert.equal(svc.requests, before);
  });

  it('claims upgrades with a tunnel Host: never /relay or /tunnel', async () => {
    const live = await expectRefusal(`${app.wsUrl}/relay?host=127.0.0.1&port=1`, { headers: { host } });
    assert.equal(live.status, 501);
    const tunnelPath = await expectRefusal(`${app.wsUrl}/tunnel`, { headers: { host: `0123456789abcdef.${TUNNEL_DOMAIN}` } });
    assert.deepEqual(tunnelPath, { status: 404, body: 'tunnel not found' });
    const invalid = await expectRefusal(`${app.wsUrl}/tunnel`, { headers: { host: `x.${host}` } });
    assert.deepEqual(invalid, { status: 404, body: 'not found' });
  });

  it('drops a request whose requester reset the connection right after sending it: nothing reaches the service', async () => {
    svc.last = null;
    const request = `GET /gone HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
    await writeThenReset(app.port, request, 50);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(svc.last, null);
    assert.equal((await httpTo(app.port, host, { path: '/after' })).status, 201, 'the tunnel serves on');
  });

  it('answers 400 malformed HTTP request to a body the parser refuses (no response had started), and closes', async () => {
    svc.last = null;
    for (const body of ['zz\r\nhello\r\n0\r\n\r\n', 'FFFFFFFFFFFFFFFFF1\r\nhello\r\n0\r\n\r\n', '5\nhello\n0\n\n', '5\r\nhello\r\n0\r\nContent-Length: 99\r\n\r\n']) {
      const text = await rawExchange(app.port, `POST /x HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\n${body}`);
      assert.match(text, /^HTTP\/1\.1 400 Bad Request\r\n[^]*Connection: close\r\n\r\nmalformed HTTP request\n$/, JSON.stringify(body));
    }
    assert.equal(svc.last, null, 'a v1 request goes out whole: none did');
  });

  it('answers 413 to a chunk extension past the parser\'s bound before the response started, and counts it', async () => {
    const count = async (): Promise<number> => {
      const text = await (await fetch(`${app.baseUrl}/metrics`)).text();
      return Number(/^wsproxy_http_refusals_total\{reason="chunk_extensions_too_large"\} (\d+)$/m.exec(text)?.[1] ?? NaN);
    };
    const before = await count();
    assert.ok(Number.isInteger(before), 'the series is exposed');
    const text = await rawExchange(app.port, `POST /x HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\n1;${'e'.repeat(40 * 1024)}\r\n`);
    assert.match(text, /^HTTP\/1\.1 413 [^]*chunk extensions too large\n$/);
    assert.equal(await count(), before + 1);
  });

  it('answers 404 tunnel not found once the tunnel has ended', async () => {
    const second = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: svc.target });
    const h = `${second.subdomain}.${TUNNEL_DOMAIN}`;
    assert.equal((await httpTo(app.port, h)).status, 201);
    await second.close();
    const service = app.app.get(TunnelService);
    await waitFor(() => !service.find(second.subdomain), 5000, 'tunnel gone');
    const res = await httpTo(app.port, h);
    assert.equal(res.status, 404);
    assert.equal(res.body.toString().trim(), 'tunnel not found');
  });
});

describe('tunnel (v2) WebSocket upgrades from requesters that reset right after sending them', () => {
  it('never reach the local service; an upgrade whose requester stays does', async () => {
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false' }));
    const { createServer } = await import('node:net');
    let reached = 0;
    const local = createServer((s) => {
      reached++;
      s.on('error', () => undefined);
      s.destroy();
    });
    await new Promise<void>((resolve) => local.listen(0, '127.0.0.1', resolve));
    const client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: `127.0.0.1:${(local.address() as import('node:net').AddressInfo).port}`, protocol: 2 });
    const host = `${client.subdomain}.${TUNNEL_DOMAIN}`;
    const upgrade = `GET /ws HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;
    try {
      await writeThenReset(app.port, upgrade, 50);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(reached, 0);
      const stays = connect(app.port, '127.0.0.1', () => stays.write(upgrade));
      stays.on('error', () => undefined);
      setTimeout(() => stays.destroy(), 2000);
      await waitFor(() => reached > 0, 5000, 'an upgrade whose requester stays reaches the service');
    } finally {
      await client.close();
      local.close();
      await app.close();
    }
  });
});

describe('tunnel HTTP limits and failures (raw protocol client)', () => {
  let app: TestApp;

  before(async () => {
    app = await startApp(
      await tunnelEnv({
        TUNNEL_TCP_ENABLED: 'false',
        TUNNEL_MAX_BODY_BYTES: '1024',
        TUNNEL_RESPONSE_TIMEOUT_MS: '400',
        MAX_TUNNEL_HTTP_PER_IP: '3',
      }),
    );
  });
  after(async () => {
    await app.close();
  });

  it('speaks the v1 wire format exactly', async () => {
    const { tunnel, ready, readyRaw } = await RawTunnel.open(app.wsUrl);
    try {
      assert.equal(readyRaw.isBinary, false);
      const sub = subdomainOf(ready.tunnelUrl as string);
      assert.equal(readyRaw.data.toString(), `{"type":"tunnel_ready","tunnelUrl":"http://${sub}.tunnel.test","rawPort":0}`);

      const get = httpTo(app.port, `${sub}.${TUNNEL_DOMAIN}`, { path: '/a?b=1' });
      const reqMsg = await tunnel.next('http_request');
      assert.equal(reqMsg.isBinary, false);
      const parsed = JSON.parse(reqMsg.data.toString()) as Record<string, unknown>;
      assert.deepEqual(Object.keys(parsed), ['type', 'id', 'method', 'path', 'headers']);
      assert.match(parsed.id as string, /^[0-9a-f]{12}$/);
      assert.equal(parsed.method, 'GET');
      assert.equal(parsed.path, '/a?b=1');
      tunnel.sendJson({ type: 'http_response', id: parsed.id, status: 200, headers: { 'content-type': 'text/plain' }, body: 'héllo' });
      const res = await get;
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'héllo');
      assert.equal(res.headers['content-length'], String(Buffer.byteLength('héllo')));

      const post = httpTo(app.port, `${sub}.${TUNNEL_DOMAIN}`, { method: 'PUT', body: Buffer.from([0, 1, 2, 255]) });
      const withBody = await tunnel.nextJson('http_request');
      assert.deepEqual(Object.keys(withBody), ['type', 'id', 'method', 'path', 'headers', 'body', 'bodyEncoding']);
      assert.equal(withBody.body, 'AAEC/w==');
      assert.equal(withBody.bodyEncoding, 'base64');
      tunnel.sendJson({ type: 'http_response', id: withBody.id, status: 204, headers: {} });
      assert.equal((await post).status, 204);
    } finally {
      await tunnel.close();
    }
  });

  it('ignores an http_response for a request it has not sent yet (its body still coming): ids are predictable, only a sent one may be answered', async () => {
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    const requester = connect(app.port, '127.0.0.1');
    try {
      let answer = '';
      requester.on('data', (c: Buffer) => (answer += c.toString('latin1')));
      const closed = new Promise<void>((resolve) => requester.on('close', () => resolve()));
      const host = `${subdomainOf(ready.tunnelUrl as string)}.${TUNNEL_DOMAIN}`;
      requester.write(`POST /upload HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n`);
      // The proxy holds a v1 body until it is whole: nothing has gone to the client yet. The first id of a
      // tunnel is 000000000001; an answer to it now is an answer to a request the client was never sent.
      await new Promise((r) => setTimeout(r, 200));
      tunnel.sendJson({ type: 'http_response', id: '000000000001', status: 200, headers: {}, body: 'guessed' });
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(answer, '', 'the requester is not answered by a guess');
      requester.write('0\r\n\r\n');
      const req = await tunnel.nextJson('http_request');
      assert.equal(req.id, '000000000001');
      assert.equal(Buffer.from(req.body as string, 'base64').toString(), 'abc');
      tunnel.sendJson({ type: 'http_response', id: req.id, status: 201, headers: {}, body: 'real' });
      await within(closed, 5000, 'the response');
      assert.match(answer, /^HTTP\/1\.1 201 /);
      assert.ok(answer.endsWith('real'), answer);
    } finally {
      requester.destroy();
      await tunnel.close();
    }
  });

  it('drops injected and forbidden response headers, caps their number and size', async () => {
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    try {
      const h = `${subdomainOf(ready.tunnelUrl as string)}.${TUNNEL_DOMAIN}`;
      const pending = httpTo(app.port, h);
      const m = await tunnel.nextJson('http_request');
      const headers: Record<string, string | string[]> = {
        'x-ok': 'fine',
        'x-crlf': 'a\r\nSet-Cookie: injected=1',
        'x-lf': 'a\nb',
        'x-nul': 'a\u0000b',
        'bad name': 'x',
        'x-bad:colon': 'x',
        'set-cookie': ['a=1', 'b=2'],
        'Set-Cookie2': 'c=3',
        'access-control-allow-origin': '*',
        'Access-Control-Allow-Credentials': 'true',
        'strict-transport-security': 'max-age=1',
        'content-security-policy': "default-src 'none'",
        'x-frame-options': 'DENY',
        connection: 'close, x-listed',
        'x-listed': 'hop',
        'keep-alive': 'timeout=1',
        'transfer-encoding': 'chunked',
        'content-length': '99999',
        upgrade: 'websocket',
        'x-huge': 'v'.repeat(9 * 1024),
        'x-array': ['one', 'two'],
      };
      for (let i = 0; i < 150; i++) headers[`x-fill-${i}`] = String(i);
      tunnel.sendJson({ type: 'http_response', id: m.id, status: 200, headers, body: 'ok' });
      const res = await pending;
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'ok');
      assert.equal(res.headers['x-ok'], 'fine');
      assert.equal(res.headers['x-array'], 'one, two');
      assert.equal(res.headers['content-length'], '2');
      for (const name of [
        'x-crlf',
        'x-lf',
        'x-nul',
        'set-cookie',
        'set-cookie2',
        'injected',
        'access-control-allow-origin',
        'access-control-allow-credentials',
        'strict-transport-security',
        'content-security-policy',
        'x-frame-options',
        'x-listed',
        'keep-alive',
        'transfer-encoding',
        'upgrade',
        'x-huge',
      ]) {
        assert.equal(res.headers[name], undefined, `${name} must be dropped`);
      }
      const fills = Object.keys(res.headers).filter((n) => n.startsWith('x-fill-'));
      assert.ok(fills.length < 100, `at most 100 headers from the client, got ${fills.length} fillers`);
      assert.ok(fills.length > 50);
    } finally {
      await tunnel.close();
    }
  });

  it('502 for a status outside 100–599 (and for 1xx finals), and for a malformed response; the tunnel lives on', async () => {
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    try {
      const h = `${subdomainOf(ready.tunnelUrl as string)}.${TUNNEL_DOMAIN}`;
      for (const answer of [{ status: 700 }, { status: 99 }, { status: 101 }, { status: '200' }, { status: 200, body: 'x', bodyEncoding: 'gzip' }]) {
        const pending = httpTo(app.port, h);
        const m = await tunnel.nextJson('http_request');
        tunnel.sendJson({ type: 'http_response', id: m.id, headers: {}, ...answer });
        const res = await pending;
        assert.equal(res.status, 502, JSON.stringify(answer));
      }
      // Garbage, unknown ids and unknown types are ignored without closing the tunnel.
      tunnel.send('not json');
      tunnel.send('[1,2]');
      tunnel.send(Buffer.from([0, 0]), true);
      tunnel.send(Buffer.from([0, 0, 0, 200, 1]), true);
      tunnel.sendJson({ type: 'http_response', id: 'ffffffffffff', status: 200 });
      tunnel.sendJson({ type: 'something_new', x: 1 });
      tunnel.sendJson({ type: 'tcp_close', connId: 'nope' });
      const pending = httpTo(app.port, h);
      const m = await tunnel.nextJson('http_request');
      tunnel.sendJson({ type: 'http_response', id: m.id, status: 200, body: 'still here' });
      const res = await pending;
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'still here');
    } finally {
      await tunnel.close();
    }
  });

  it('routes an absolute-form request by the authority in its target, not by its Host header (RFC 9112 §3.2.2)', async () => {
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    const raw = async (requestLine: string, host: string): Promise<number> => (await rawRequest(app.port, requestLine, { host })).status;
    try {
      const live = `${subdomainOf(ready.tunnelUrl as string)}.${TUNNEL_DOMAIN}`;
      // The authority names the tunnel, the Host header the proxy itself: the tunnel gets it.
      const forwarded = raw(`GET http://${live}/abs HTTP/1.1`, '127.0.0.1');
      const m = await tunnel.nextJson<{ id: string; path: string; headers: Record<string, string> }>('http_request');
      assert.equal(m.path, '/abs');
      assert.equal(m.headers.host, live, 'the service sees the host the target named, not the Host header');
      tunnel.sendJson({ type: 'http_response', id: m.id, status: 200, body: 'ok' });
      assert.equal(await forwarded, 200);
      // The authority names another subdomain, the Host header the live tunnel: not forwarded.
      assert.equal(await raw(`GET http://0000000000000000.${TUNNEL_DOMAIN}/x HTTP/1.1`, live), 404);
      assert.equal(tunnel.received.filter((x) => x.data.includes('"/x"')).length, 0);
    } finally {
      await tunnel.close();
    }
  });

  it('refuses a request target with a fragment (#) with 400 and never forwards it (RFC 9112 §3.2: no fragment in any form)', async () => {
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    try {
      const live = `${subdomainOf(ready.tunnelUrl as string)}.${TUNNEL_DOMAIN}`;
      for (const target of ['/a#frag/../../admin', `http://${live}/b#x`]) {
        const r = await rawRequest(app.port, `GET ${target} HTTP/1.1`, { host: live });
        assert.equal(r.status, 400, target);
        assert.match(r.text, /bad request target/);
      }
      const upgrade = await rawExchange(app.port, `GET /ws#x HTTP/1.1\r\nHost: ${live}\r\n${UPGRADE_HEADERS}\r\n`);
      assert.match(upgrade, /^HTTP\/1\.1 400 [^]*bad request target/);
      assert.equal(tunnel.received.filter((x) => x.data.includes('http_request')).length, 0, 'nothing reached the tunnel');
    } finally {
      await tunnel.close();
    }
  });

  it('answers HEAD with the Content-Length the service declared, and no body', async () => {
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    try {
      const h = `${subdomainOf(ready.tunnelUrl as string)}.${TUNNEL_DOMAIN}`;
      const res = httpTo(app.port, h, { method: 'HEAD', path: '/file' });
      const m = await tunnel.nextJson('http_request');
      assert.equal(m.method, 'HEAD');
      tunnel.sendJson({ type: 'http_response', id: m.id, status: 200, headers: { 'content-length': '1234', 'content-type': 'text/plain' } });
      const r = await res;
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], '1234');
      assert.equal(r.body.length, 0);
      // A malformed length is dropped, not forwarded.
      const bad = httpTo(app.port, h, { method: 'HEAD', path: '/file' });
      const m2 = await tunnel.nextJson('http_request');
      tunnel.sendJson({ type: 'http_response', id: m2.id, status: 200, headers: { 'content-length': '12, 13' } });
      const r2 = await bad;
      assert.equal(r2.status, 200);
      assert.equal(r2.headers['content-length'], undefined, 'no Content-Length: neither value of a conflicting pair is picked');
    } finally {
      await tunnel.close();
    }
  });

  it('413 beyond TUNNEL_MAX_BODY_BYTES, declared or chunked, without forwarding', async () => {
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    try {
      const h = `${subdomainOf(ready.tunnelUrl as string)}.${TUNNEL_DOMAIN}`;
      // One byte over the limit (1024 here), declared and chunked.
      const declared = await httpTo(app.port, h, { method: 'POST', body: Buffer.alloc(1025) });
      assert.equal(declared.status, 413);
      const chunked = await httpTo(app.port, h, { method: 'POST', body: Buffer.alloc(1025), chunked: true });
      assert.equal(chunked.status, 413);
      // A declared length over the limit is answered before any of the body is sent.
      const early = await Promise.race([
        rawRequest(app.port, 'POST / HTTP/1.1', { host: h, headers: 'Content-Length: 1025\r\n' }),
        new Promise<null>((r) => setTimeout(() => r(null), 3000).unref()),
      ]);
      assert.equal(early?.status, 413, 'answered without waiting for the body');
      // With Expect: 100-continue, the refusal comes instead of 100 Continue (RFC 9110 10.1.1): the body is never asked for.
      const expecting = await rawRequest(app.port, 'POST / HTTP/1.1', { host: h, headers: 'Content-Length: 1025\r\nExpect: 100-continue\r\n' });
      assert.equal(expecting.status, 413);
      assert.doesNotMatch(expecting.text, /100 Continue/);
      assert.equal(tunnel.received.filter((m) => m.data.includes('http_request')).length, 0);
      // At the limit passes.
      const ok = httpTo(app.port, h, { method: 'POST', body: Buffer.alloc(1024, 7) });
      const m = await tunnel.nextJson('http_request');
      assert.equal(Buffer.from(m.body as string, 'base64').length, 1024);
      tunnel.sendJson({ type: 'http_response', id: m.id, status: 200 });
      assert.equal((await ok).status, 200);
      // With Expect: 100-continue it gets 100 Continue once the proxy reads the body, then the body goes through.
      const s = connect({ host: '127.0.0.1', port: app.port });
      s.on('error', () => undefined);
      let text = '';
      s.on('data', (c: Buffer) => (text += c.toString('latin1')));
      s.write(`POST /c HTTP/1.1\r\nHost: ${h}\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`);
      await waitFor(() => text.startsWith('HTTP/1.1 100 Continue\r\n'), 5000, '100 Continue');
      s.write('body');
      const c = await tunnel.nextJson('http_request');
      assert.equal(Buffer.from(c.body as string, 'base64').toString(), 'body');
      tunnel.sendJson({ type: 'http_response', id: c.id, status: 201 });
      await waitFor(() => /HTTP\/1\.1 201 /.test(text), 5000, 'the response');
      s.destroy();
    } finally {
      await tunnel.close();
    }
  });

  it('serves a request that asks for another protocol than WebSocket (h2c) on a tunnel host as the request it is (RFC 9110 §7.8: curl --http2 offers h2c)', async () => {
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    try {
      const h = `${subdomainOf(ready.tunnelUrl as string)}.${TUNNEL_DOMAIN}`;
      const h2c = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n';
      const pending = rawRequest(app.port, 'GET /h2 HTTP/1.1', { host: h, headers: h2c });
      const m = await tunnel.nextJson<{ id: string; path: string; headers: Record<string, string> }>('http_request');
      assert.equal(m.path, '/h2');
      // The upgrade offer is hop-by-hop: the service sees a plain GET.
      assert.equal(m.headers.upgrade, undefined);
      assert.equal(m.headers['http2-settings'], undefined);
      tunnel.sendJson({ type: 'http_response', id: m.id, status: 200, headers: { 'content-type': 'text/plain' }, body: 'served' });
      const r = await pending;
      assert.equal(r.status, 200);
      assert.match(r.text, /\r\n\r\nserved$/);
      // With a body it cannot be read once Node has handed the connection over: refused, never forwarded.
      const withBody = await rawRequest(app.port, 'POST /h2 HTTP/1.1', { host: h, headers: `${h2c}Content-Length: 2\r\n` });
      assert.equal(withBody.status, 400);
      assert.equal(tunnel.received.filter((x) => x.data.includes('http_request')).length, 1);
    } finally {
      await tunnel.close();
    }
  });

  it('504 when the client does not answer within TUNNEL_RESPONSE_TIMEOUT_MS; a late answer is ignored', async () => {
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    try {
      const h = `${subdomainOf(ready.tunnelUrl as string)}.${TUNNEL_DOMAIN}`;
      const pending = httpTo(app.port, h);
      const m = await tunnel.nextJson('http_request');
      const res = await pending;
      assert.equal(res.status, 504);
      tunnel.sendJson({ type: 'http_response', id: m.id, status: 200, body: 'late' });
      const again = httpTo(app.port, h);
      const m2 = await tunnel.nextJson('http_request');
      tunnel.sendJson({ type: 'http_response', id: m2.id, status: 200, body: 'on time' });
      assert.equal((await again).body.toString(), 'on time');
    } finally {
      await tunnel.close();
    }
  });

  it('429 beyond MAX_TUNNEL_HTTP_PER_IP concurrent requests; the slot returns when a request ends', async () => {
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    try {
      const h = `${subdomainOf(ready.tunnelUrl as string)}.${TUNNEL_DOMAIN}`;
      const held = [httpTo(app.port, h), httpTo(app.port, h), httpTo(app.port, h)];
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await tunnel.nextJson('http_request')).id as string);
      const refused = await httpTo(app.port, h);
      assert.equal(refused.status, 429);
      assert.equal(refused.body.toString(), 'too many requests from this IP\n');
      for (const id of ids) tunnel.sendJson({ type: 'http_response', id, status: 200 });
      for (const p of held) assert.equal((await p).status, 200);
      const next = httpTo(app.port, h);
      const m = await tunnel.nextJson('http_request');
      tunnel.sendJson({ type: 'http_response', id: m.id, status: 200 });
      assert.equal((await next).status, 200);
    } finally {
      await tunnel.close();
    }
  });

  it('counts an IPv6 requester per IPV6_LIMIT_PREFIX (a /64) against MAX_TUNNEL_HTTP_PER_IP', async () => {
    const v6 = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false', MAX_TUNNEL_HTTP_PER_IP: '1', TRUSTED_PROXIES: '127.0.0.0/8' }));
    const { tunnel, ready } = await RawTunnel.open(v6.wsUrl);
    try {
      const h = `${subdomainOf(ready.tunnelUrl as string)}.${TUNNEL_DOMAIN}`;
      // Header values only: nothing is dialled at these documentation addresses.
      const from = (ip: string): { headers: Record<string, string> } => ({ headers: { 'x-forwarded-for': ip } });
      const held = httpTo(v6.port, h, from('2001:db8:1:2::1'));
      const first = await tunnel.nextJson('http_request');
      const sameNetwork = await httpTo(v6.port, h, from('2001:db8:1:2::2'));
      assert.equal(sameNetwork.status, 429);
      const other = httpTo(v6.port, h, from('2001:db8:1:3::1'));
      const second = await tunnel.nextJson('http_request');
      for (const m of [first, second]) tunnel.sendJson({ type: 'http_response', id: m.id, status: 200 });
      assert.equal((await held).status, 200);
      assert.equal((await other).status, 200);
    } finally {
      await tunnel.close();
      await v6.close();
    }
  });

  it('answers every waiting request 502 at once when the tunnel drops', async () => {
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    const h = `${subdomainOf(ready.tunnelUrl as string)}.${TUNNEL_DOMAIN}`;
    const waiting = [httpTo(app.port, h), httpTo(app.port, h, { method: 'POST', body: 'x' })];
    await tunnel.next('http_request');
    await tunnel.next('http_request');
    tunnel.ws.terminate();
    const results = await Promise.all(waiting);
    for (const r of results) {
      assert.equal(r.status, 502);
      assert.equal(r.body.toString().trim(), 'tunnel client disconnected');
    }
    const gone = await httpTo(app.port, h);
    assert.equal(gone.status, 404);
  });

  it('control=binary: every control message arrives in a binary frame with the same JSON; binary control is accepted', async () => {
    const { tunnel, ready, readyRaw } = await RawTunnel.open(app.wsUrl, '?control=binary');
    try {
      assert.equal(readyRaw.isBinary, true);
      const sub = subdomainOf(ready.tunnelUrl as string);
      assert.equal(readyRaw.data.toString(), `{"type":"tunnel_ready","tunnelUrl":"http://${sub}.tunnel.test","rawPort":0}`);
      const pending = httpTo(app.port, `${sub}.${TUNNEL_DOMAIN}`);
      const m = await tunnel.next('http_request');
      assert.equal(m.isBinary, true);
      const parsed = JSON.parse(m.data.toString()) as { id: string };
      tunnel.sendJson({ type: 'http_response', id: parsed.id, status: 200, body: 'YmluYXJ5', bodyEncoding: 'base64' }, true);
      const res = await pending;
      assert.equal(res.body.toString(), 'binary');
    } finally {
      await tunnel.close();
    }
  });

  it('control=binary works with the reference client', async () => {
    const svc = await startHttpService((_req, body, res) => res.end(`got ${body.length}`));
    const client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: svc.target, control: 'binary' });
    try {
      const res = await httpTo(app.port, `${client.subdomain}.${TUNNEL_DOMAIN}`, { method: 'POST', body: 'abc' });
      assert.equal(res.body.toString(), 'got 3');
    } finally {
      await client.close();
      await svc.close();
    }
  });

  it('400 control must be text or binary for an unknown control mode, under v2 too (4400 with errors=close)', async () => {
    const reason = 'control must be text or binary';
    for (const q of ['?control=json', '?v=2&control=json']) {
      assert.deepEqual(await expectRefusal(`${app.wsUrl}/tunnel${q}`), { status: 400, body: reason }, q);
      assert.deepEqual(await expectCloseRefusal(`${app.wsUrl}/tunnel${q}&errors=close`), { code: 4400, reason }, q);
    }
  });
});

describe('v1 request bodies held in memory', () => {
  /** A POST that declares `declared` body bytes and sends `sent` of them (from `from`), and the answer read so far. */
  function trickleUpload(port: number, host: string, declared: number, sent: number, from = '127.0.0.1'): { socket: import('node:net').Socket; answer(): string } {
    const socket = connect({ host: '127.0.0.1', port, localAddress: from });
    socket.on('error', () => undefined);
    socket.write(`POST /upload HTTP/1.1\r\nHost: ${host}\r\nContent-Length: ${declared}\r\nConnection: close\r\n\r\n`);
    socket.write(Buffer.alloc(sent, 1));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    return { socket, answer: () => Buffer.concat(chunks).toString('latin1') };
  }

  it('503 once the bodies all v1 tunnels hold would pass TUNNEL_V1_BODY_BUFFER_BYTES; the bytes come back as requests end', async () => {
    const KiB = 1024;
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false', TUNNEL_V1_BODY_BUFFER_BYTES: String(1024 * KiB), TUNNEL_MAX_BODY_BYTES: String(1024 * KiB) }));
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    const h = `${subdomainOf(ready.tunnelUrl as string)}.${TUNNEL_DOMAIN}`;
    const service = app.app.get(TunnelService);
    // A visitor trickles a large body: the proxy holds what arrived.
    const slow = trickleUpload(app.port, h, 900 * KiB, 700 * KiB).socket;
    try {
      await waitFor(() => service.v1BodyBytesHeld === 700 * KiB, 5000, 'the first body held');
      const refused = await httpTo(app.port, h, { method: 'POST', body: Buffer.alloc(500 * KiB, 2) });
      assert.equal(refused.status, 503);
      assert.equal(refused.body.toString().trim(), 'too many request bodies in transit');
      await waitFor(() => service.v1BodyBytesHeld === 700 * KiB, 5000, 'the refused body given back');
      // The first body completes: forwarded whole, its bytes given back.
      slow.write(Buffer.alloc(200 * KiB, 1));
      const first = await tunnel.nextJson('http_request');
      assert.equal(Buffer.from(first.body as string, 'base64').length, 900 * KiB);
      assert.equal(service.v1BodyBytesHeld, 0);
      // Now the same request fits.
      const again = httpTo(app.port, h, { method: 'POST', body: Buffer.alloc(500 * KiB, 3) });
      const second = await tunnel.nextJson('http_request');
      assert.equal(Buffer.from(second.body as string, 'base64').length, 500 * KiB);
      tunnel.sendJson({ type: 'http_response', id: second.id, status: 200, headers: {}, body: 'ok' });
      assert.equal((await again).status, 200);

      // A tunnel that ends while a body is arriving gives its bytes back too.
      const trickle = trickleUpload(app.port, h, 900 * KiB, 700 * KiB).socket;
      await waitFor(() => service.v1BodyBytesHeld === 700 * KiB, 5000, 'the third body held');
      tunnel.ws.terminate();
      await waitFor(() => service.v1BodyBytesHeld === 0, 5000, 'the bytes of a tunnel that ended given back');
      trickle.destroy();
    } finally {
      slow.destroy();
      await tunnel.close();
      await app.close();
    }
  });

  it('holds one requester address to its share (an eighth, or one largest body), so it cannot take the budget from the others', async () => {
    const KiB = 1024;
    // 8 MiB in all, 1 MiB per address (the largest body).
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false', TUNNEL_V1_BODY_BUFFER_BYTES: String(8192 * KiB), TUNNEL_MAX_BODY_BYTES: String(1024 * KiB) }));
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    const h = `${subdomainOf(ready.tunnelUrl as string)}.${TUNNEL_DOMAIN}`;
    const service = app.app.get(TunnelService);
    const sockets: import('node:net').Socket[] = [];
    try {
      const a = trickleUpload(app.port, h, 1000 * KiB, 900 * KiB);
      sockets.push(a.socket);
      await waitFor(() => service.v1BodyBytesHeld === 900 * KiB, 5000, 'the first body of 127.0.0.1 held');
      const b = trickleUpload(app.port, h, 300 * KiB, 200 * KiB);
      sockets.push(b.socket);
      await waitFor(() => /^HTTP\/1\.1 503 /.test(b.answer()), 5000, 'a second body from the same address refused');
      assert.match(b.answer(), /too many request bodies in transit/);
      const c = trickleUpload(app.port, h, 300 * KiB, 200 * KiB, '127.0.0.2');
      sockets.push(c.socket);
      await waitFor(() => service.v1BodyBytesHeld === 1100 * KiB, 5000, 'another address still fits');
    } finally {
      for (const s of sockets) s.destroy();
      await tunnel.close();
      await app.close();
    }
  });

  it('holds a body trickled a byte per TCP segment in about its bytes, not a Buffer per read (~180 times them)', async () => {
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false' }));
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    const h = `${subdomainOf(ready.tunnelUrl as string)}.${TUNNEL_DOMAIN}`;
    const service = app.app.get(TunnelService);
    // The wire that holds the body, seen as it takes the first byte.
    const KiB = 1024;
    const seen: { wire: { streams: { values(): unknown[] } } | null } = { wire: null };
    const data = V1Wire.prototype.data;
    V1Wire.prototype.data = function (this: V1Wire, ...args: Parameters<V1Wire['data']>) {
      seen.wire = this as unknown as typeof seen.wire;
      return data.apply(this, args);
    };
    const socket = connect(app.port, '127.0.0.1');
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    try {
      await once(socket, 'connect');
      const body = randomPayload(20_000);
      socket.write(`POST /trickle HTTP/1.1\r\nHost: ${h}\r\nContent-Length: ${body.length}\r\n\r\n`);
      let reads = 0;
      const server = app.app.getHttpServer() as import('node:http').Server;
      server.once('request', (req: import('node:http').IncomingMessage) => req.socket.on('data', () => reads++));
      for (let i = 0; i < body.length - 1; i++) {
        socket.write(body.subarray(i, i + 1));
        await new Promise((r) => setImmediate(r));
      }
      await waitFor(() => service.v1BodyBytesHeld === body.length - 1, 10_000, 'all but the last byte held');
      // Every Buffer the stream's state keeps, and the memory behind them.
      const views = new Set<Uint8Array>();
      const walk = (v: unknown, depth: number): void => {
        if (v instanceof Uint8Array) views.add(v);
        else if (v !== null && typeof v === 'object' && depth < 4) for (const x of Object.values(v)) walk(x, depth + 1);
      };
      for (const s of seen.wire!.streams.values()) walk(s, 0);
      const pinned = [...new Set([...views].map((v) => v.buffer))].reduce((n, b) => n + b.byteLength, 0);
      assert.ok(reads > 1000, `the body came in ${reads} reads (a test that means something needs many)`);
      assert.ok(views.size <= 64, `${views.size} Buffers hold a body of ${body.length - 1} bytes that came in ${reads} reads`);
      assert.ok(pinned <= 2 * body.length + 64 * KiB, `${pinned} bytes of ArrayBuffers pinned for ${body.length - 1} body bytes`);
      // The body still goes out whole once its last byte is there.
      socket.write(body.subarray(body.length - 1));
      const m = await tunnel.nextJson('http_request');
      assert.equal(sha(Buffer.from(m.body as string, 'base64')), sha(body));
      assert.equal(service.v1BodyBytesHeld, 0);
    } finally {
      V1Wire.prototype.data = data;
      socket.destroy();
      await tunnel.close();
      await app.close();
    }
  });
});

describe('v1 responses held for their requesters', () => {
  it('holds a response whole until its requester has taken it, against the same budget: 503 for an address past its share, the bytes back once taken', async () => {
    const MiB = 1024 * 1024;
    // 64 MiB in all, 8 MiB per address (the largest body).
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false', TUNNEL_V1_BODY_BUFFER_BYTES: String(64 * MiB), TUNNEL_MAX_BODY_BYTES: String(8 * MiB) }));
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    const h = `${subdomainOf(ready.tunnelUrl as string)}.${TUNNEL_DOMAIN}`;
    const service = app.app.get(TunnelService);
    const big = Buffer.alloc(8 * MiB, 7).toString('base64');
    // A requester that asks for 8 MiB and never reads: more than the kernel's buffers take, so the rest waits in the proxy.
    const stalled = connect({ host: '127.0.0.1', port: app.port });
    stalled.on('error', () => undefined);
    stalled.pause();
    try {
      stalled.write(`GET /big HTTP/1.1\r\nHost: ${h}\r\n\r\n`);
      const first = await tunnel.nextJson('http_request');
      tunnel.sendJson({ type: 'http_response', id: first.id, status: 200, headers: {}, body: big, bodyEncoding: 'base64' });
      await waitFor(() => service.v1BodyBytesHeld === 8 * MiB, 5000, 'the response held against the budget');
      // The same address asks for another: past its share, refused instead of held.
      const second = httpTo(app.port, h, { path: '/big2' });
      const next = await tunnel.nextJson('http_request');
      tunnel.sendJson({ type: 'http_response', id: next.id, status: 200, headers: {}, body: big, bodyEncoding: 'base64' });
      const refused = await second;
      assert.equal(refused.status, 503);
      assert.equal(refused.body.toString().trim(), 'too many responses waiting for their requesters');
      assert.equal(service.v1BodyBytesHeld, 8 * MiB, 'the refused response is not held');
      // The requester reads: the whole body arrives and the bytes come back.
      let got = 0;
      stalled.on('data', (c: Buffer) => (got += c.length));
      stalled.resume();
      await waitFor(() => got > 8 * MiB && service.v1BodyBytesHeld === 0, 10_000, 'the response taken and its bytes given back');
      // A requester that vanishes gives them back too.
      const gone = connect({ host: '127.0.0.1', port: app.port });
      gone.on('error', () => undefined);
      gone.pause();
      gone.write(`GET /big3 HTTP/1.1\r\nHost: ${h}\r\n\r\n`);
      const third = await tunnel.nextJson('http_request');
      tunnel.sendJson({ type: 'http_response', id: third.id, status: 200, headers: {}, body: big, bodyEncoding: 'base64' });
      await waitFor(() => service.v1BodyBytesHeld === 8 * MiB, 5000, 'the third response held');
      gone.destroy();
      await waitFor(() => service.v1BodyBytesHeld === 0, 5000, 'the bytes of a requester that left given back');
    } finally {
      stalled.destroy();
      await tunnel.close();
      await app.close();
    }
  });
});

describe('v1 responses larger than an address share', () => {
  it('takes a response larger than its address share (sized for request bodies) when the address holds nothing else', async () => {
    const MiB = 1024 * 1024;
    // 16 MiB in all, 2 MiB per address: a 3 MiB response is over the share but within the client's response limit.
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false', TUNNEL_V1_BODY_BUFFER_BYTES: String(16 * MiB), TUNNEL_MAX_BODY_BYTES: String(MiB) }));
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    const h = `${subdomainOf(ready.tunnelUrl as string)}.${TUNNEL_DOMAIN}`;
    try {
      const answer = httpTo(app.port, h, { path: '/three' });
      const m = await tunnel.nextJson('http_request');
      tunnel.sendJson({ type: 'http_response', id: m.id, status: 200, headers: {}, body: Buffer.alloc(3 * MiB, 5).toString('base64'), bodyEncoding: 'base64' });
      const r = await answer;
      assert.equal(r.status, 200);
      assert.equal(r.body.length, 3 * MiB);
      await waitFor(() => app.app.get(TunnelService).v1BodyBytesHeld === 0, 5000, 'given back');
    } finally {
      await tunnel.close();
      await app.close();
    }
  });
});

describe('a v1 tunnel client that stops reading', () => {
  let app: TestApp;

  before(async () => {
    app = await startApp(
      await tunnelEnv({
        TUNNEL_TCP_ENABLED: 'false',
        TUNNEL_MAX_BODY_BYTES: String(1024 * 1024),
        TUNNEL_RESPONSE_TIMEOUT_MS: '60000',
        MAX_TUNNEL_HTTP_PER_IP: '1000',
      }),
    );
  });
  after(async () => {
    await app.close();
  });

  it('gets no more requests queued past a bounded backlog: visitors get 503, the send buffer stays bounded', async () => {
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    const sub = subdomainOf(ready.tunnelUrl as string);
    const h = `${sub}.${TUNNEL_DOMAIN}`;
    (tunnel.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const wire = app.app.get(TunnelService).find(sub)!.wire as unknown as { ws: { bufferedAmount: number } };
    let most = 0;
    const sample = setInterval(() => (most = Math.max(most, wire.ws.bufferedAmount)), 5);
    try {
      const posts = Array.from({ length: 60 }, () => httpTo(app.port, h, { method: 'POST', body: Buffer.alloc(1024 * 1024, 1) }).catch((e: Error) => ({ status: -1, body: Buffer.from(e.message) })));
      const busy = await Promise.race([
        Promise.any(posts.map(async (p) => ((await p).status === 503 ? p : Promise.reject(new Error('not 503'))))),
        new Promise<never>((_r, reject) => setTimeout(() => reject(new Error('no 503 within 20 s')), 20_000)),
      ]);
      assert.equal(busy.body.toString().trim(), 'tunnel client is not reading');
      // The backlog bound (16 MiB here) plus at most one request (1 MiB of body, base64) was ever queued.
      assert.ok(most <= 16 * 1024 * 1024 + 2.5 * 1024 * 1024, `send buffer reached ${most} bytes`);
      tunnel.ws.terminate();
      const statuses = (await Promise.all(posts)).map((r) => r.status);
      assert.ok(statuses.every((s) => s === 503 || s === 502 || s === 404), `every visitor answered (503, or 502/404 once the tunnel is gone): ${[...new Set(statuses)].join(',')}`);
    } finally {
      clearInterval(sample);
      tunnel.ws.terminate();
    }
  });
});

describe('TUNNEL_MAX_BODY_BYTES above what v1 can carry', () => {
  let app: TestApp;

  before(async () => {
    app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false', TUNNEL_MAX_BODY_BYTES: String(1024 * 1024 * 1024) }));
  });
  after(async () => {
    await app.close();
  });

  /** Sends only a request head declaring `length` body bytes; resolves with the status the proxy answers before any body. */
  function declare(host: string, length: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: app.port }, () =>
        s.write(`POST /upload HTTP/1.1\r\nHost: ${host}\r\nContent-Length: ${length}\r\n\r\n`),
      );
      s.once('data', (c: Buffer) => {
        s.destroy();
        resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(c.toString('latin1'))?.[1] ?? 0));
      });
      s.once('error', reject);
      setTimeout(() => {
        s.destroy();
        resolve(0);
      }, 3000).unref();
    });
  }

  it('refuses a v1 body over 256 MiB with 413 (a larger one would not fit a V8 string), and lets v2 take it', async () => {
    const v1 = await RawTunnel.open(app.wsUrl);
    const v2 = await RawV2Tunnel.open(app.wsUrl, '?v=2');
    try {
      assert.equal(await declare(`${subdomainOf(v1.ready.tunnelUrl as string)}.${TUNNEL_DOMAIN}`, 300_000_000), 413);
      assert.equal(v1.tunnel.received.filter((m) => m.data.includes('http_request')).length, 0);
      // v2 streams bodies: nothing is answered before the body comes.
      assert.equal(await declare(`${subdomainOf(v2.ready.ready.tunnelUrl)}.${TUNNEL_DOMAIN}`, 300_000_000), 0);
    } finally {
      await v1.tunnel.close();
      v2.tunnel.ws.terminate();
    }
  });
});

describe('a requester that never reads its response', () => {
  let app: TestApp;

  before(async () => {
    app = await startApp(
      await tunnelEnv({
        TUNNEL_TCP_ENABLED: 'false',
        TUNNEL_MAX_BODY_BYTES: String(16 * 1024 * 1024),
        TUNNEL_RESPONSE_TIMEOUT_MS: '500',
        TUNNEL_REQUESTER_STALL_MS: '1000',
        MAX_TUNNEL_HTTP_PER_IP: '1',
      }),
    );
  });
  after(async () => {
    await app.close();
  });

  it('is dropped once the response waits on it for TUNNEL_REQUESTER_STALL_MS: its slot comes back', async () => {
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    const h = `${subdomainOf(ready.tunnelUrl as string)}.${TUNNEL_DOMAIN}`;
    const stuck = connect({ host: '127.0.0.1', port: app.port });
    stuck.on('error', () => undefined);
    try {
      await new Promise<void>((r) => stuck.once('connect', () => r()));
      stuck.write(`GET /big HTTP/1.1\r\nHost: ${h}\r\n\r\n`);
      stuck.pause();
      const m = await tunnel.nextJson('http_request');
      tunnel.sendJson({ type: 'http_response', id: m.id, status: 200, body: randomPayload(8 * 1024 * 1024).toString('base64') });
      // The only slot of this IP is held while the response waits; then it is given back.
      const deadline = Date.now() + 10_000;
      const forwarded = tunnel.nextJson('http_request', 10_000).then(() => 'forwarded' as const);
      for (;;) {
        const outcome = await Promise.race([httpTo(app.port, h, { path: '/next' }).then((r) => r.status), forwarded]);
        if (outcome === 'forwarded') break;
        assert.equal(outcome, 429);
        assert.ok(Date.now() < deadline, 'the stuck requester still holds its slot after 10 s');
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      stuck.destroy();
      await tunnel.close();
    }
  });
});

describe('a requester that closes its connection (FIN) while its answer is pending or streaming', () => {
  it('frees its MAX_TUNNEL_HTTP_PER_IP slot and ends its stream at once: a FIN cannot be told from a requester gone', async () => {
    // Default TUNNEL_REQUESTER_STALL_MS and TUNNEL_RESPONSE_TIMEOUT_MS (60 s): neither may be what frees them.
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false', MAX_TUNNEL_HTTP_PER_IP: '1' }));
    const closedPaths: string[] = [];
    const local = createServer((req, res) => {
      res.on('close', () => closedPaths.push(req.url ?? ''));
      if (req.url === '/sse') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: hello\n\n');
      } else if (req.url !== '/long-poll') {
        res.end('next');
      }
    });
    await new Promise<void>((r) => local.listen(0, '127.0.0.1', r));
    const client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: `127.0.0.1:${(local.address() as AddressInfo).port}`, protocol: 2 });
    const h = `${client.subdomain}.${TUNNEL_DOMAIN}`;
    const router = app.app.get(TunnelHttpRouter);
    const open = async (path: string, until: (received: string) => boolean): Promise<Socket> => {
      const s = connect({ host: '127.0.0.1', port: app.port });
      s.on('error', () => undefined);
      await new Promise<void>((r) => s.once('connect', () => r()));
      let received = '';
      s.on('data', (c: Buffer) => (received += c.toString()));
      s.write(`GET ${path} HTTP/1.1\r\nHost: ${h}\r\n\r\n`);
      await waitFor(() => until(received), 5000, `${path} under way`);
      return s;
    };
    try {
      let seen = 0;
      local.on('request', () => seen++);
      for (const [path, shown] of [['/long-poll', ''], ['/sse', 'data: hello']]) {
        const before = seen;
        // A closed tab: close(2) after reading all that came is a FIN (not a reset), the same a requester that only
        // half-closed sends.
        (await open(path, (received) => seen > before && router.inFlightFrom('127.0.0.1') === 1 && received.includes(shown))).destroy();
        await waitFor(() => router.inFlightFrom('127.0.0.1') === 0, 3000, `the slot of the gone ${path} requester`);
        await waitFor(() => closedPaths.includes(path), 3000, `the local ${path} request closed (its stream reset)`);
        assert.equal((await httpTo(app.port, h, { path: '/next' })).status, 200);
      }
    } finally {
      await client.close();
      await app.close();
      local.closeAllConnections();
      local.close();
    }
  });
});

describe('v1 reference client and a local service that never answers', () => {
  it('drops the local request after localResponseTimeoutMs, so requests the proxy gave up on hold no connection', async () => {
    const { createServer } = await import('node:http');
    const open = new Set<import('node:net').Socket>();
    const silent = createServer(() => undefined);
    silent.on('connection', (s) => {
      open.add(s);
      s.on('close', () => open.delete(s));
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as import('node:net').AddressInfo).port;
    const app = await startApp(await tunnelEnv({ TUNNEL_RESPONSE_TIMEOUT_MS: '300', TUNNEL_TCP_ENABLED: 'false' }, 2));
    const client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: `127.0.0.1:${port}`, localResponseTimeoutMs: 2500 });
    try {
      const host = `${client.subdomain}.${TUNNEL_DOMAIN}`;
      const answers = await Promise.all([1, 2, 3].map(() => httpTo(app.port, host, { path: '/' })));
      assert.deepEqual(answers.map((a) => a.status), [504, 504, 504]);
      assert.equal(open.size, 3, 'the local requests are still waiting');
      await waitFor(() => open.size === 0, 6000, 'the local connections dropped');
    } finally {
      await client.close();
      await app.close();
      silent.closeAllConnections();
      silent.close();
    }
  });
});

describe('reference clients and a local service that answers 101 to a plain request', () => {
  for (const protocol of [1, 2] as const) {
    it(`v${protocol}: answers 502 at once instead of leaving the requester waiting`, async () => {
      const { createServer: createNetServer } = await import('node:net');
      const switcher = createNetServer((s) => {
        s.on('error', () => undefined);
        s.once('data', () => s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\nRAW'));
      });
      await new Promise<void>((r) => switcher.listen(0, '127.0.0.1', () => r()));
      const port = (switcher.address() as import('node:net').AddressInfo).port;
      const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false' }, 2));
      const client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: `127.0.0.1:${port}`, protocol });
      try {
        const host = `${client.subdomain}.${TUNNEL_DOMAIN}`;
        // The proxy's response timeout is 60 s: an answer within 5 s is the client's.
        const res = await within(httpTo(app.port, host, { path: '/' }), 5000, 'an answer');
        assert.equal(res.status, 502);
        assert.match(res.body.toString(), /switched protocols unasked/);
        assert.equal((await within(httpTo(app.port, host, { path: '/again' }), 5000, 'a second answer')).status, 502, 'the tunnel goes on');
      } finally {
        await client.close();
        await app.close();
        switcher.close();
      }
    });
  }
});

describe('v1 responses and a small TUNNEL_MAX_BODY_BYTES', () => {
  it('carries a local response larger than TUNNEL_MAX_BODY_BYTES (a request limit) instead of closing the tunnel', async () => {
    const big = randomPayload(5 * 1024 * 1024);
    const svc = await startHttpService((req, _body, res) => {
      if (req.url === '/big') res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(big);
      else res.writeHead(200).end('ok');
    });
    const app = await startApp(await tunnelEnv({ TUNNEL_MAX_BODY_BYTES: String(1024 * 1024), TUNNEL_TCP_ENABLED: 'false' }, 2));
    const client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: svc.target });
    try {
      const host = `${client.subdomain}.${TUNNEL_DOMAIN}`;
      const res = await httpTo(app.port, host, { path: '/big' });
      assert.equal(res.status, 200);
      assert.equal(sha(res.body), sha(big));
      assert.equal((await httpTo(app.port, host, { path: '/' })).status, 200, 'the tunnel is still there');
    } finally {
      await client.close();
      await app.close();
      await svc.close();
    }
  });
});

describe('v1 responses refused at their head', () => {
  it('give their body bytes back to the budget: a client answering statuses the proxy refuses cannot starve the other v1 requests', async () => {
    const KiB = 1024;
    // 1 MiB in all, 256 KiB per address (the largest body).
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false', TUNNEL_V1_BODY_BUFFER_BYTES: String(1024 * KiB), TUNNEL_MAX_BODY_BYTES: String(256 * KiB) }));
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    const h = `${subdomainOf(ready.tunnelUrl as string)}.${TUNNEL_DOMAIN}`;
    const service = app.app.get(TunnelService);
    const body = Buffer.alloc(200 * KiB, 9).toString('base64');
    try {
      for (const status of [600, 101, 103]) {
        const answer = httpTo(app.port, h, { path: `/refused-${status}` });
        const m = await tunnel.nextJson('http_request');
        tunnel.sendJson({ type: 'http_response', id: m.id, status, headers: {}, body, bodyEncoding: 'base64' });
        assert.equal((await answer).status, 502);
        await waitFor(() => service.v1BodyBytesHeld === 0, 5000, `the body of a refused ${status} given back`);
      }
      // The same address still gets a whole response.
      const answer = httpTo(app.port, h, { path: '/fine' });
      const m = await tunnel.nextJson('http_request');
      tunnel.sendJson({ type: 'http_response', id: m.id, status: 200, headers: {}, body, bodyEncoding: 'base64' });
      const r = await answer;
      assert.equal(r.status, 200);
      assert.equal(r.body.length, 200 * KiB);
    } finally {
      await tunnel.close();
      await app.close();
    }
  });
});
