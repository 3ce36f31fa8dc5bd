import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type IncomingHttpHeaders } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { WebSocket, type WebSocketServer } from 'ws';
import { TunnelTcpForwarding } from '../src/cluster/tunnels/tcp-forwarding.js';
import { ROUTE_CACHE_CLOCK } from '../src/cluster/tunnels/route-cache.js';
import { MUX_PATH } from '../src/cluster/tunnels/cluster-mux.js';
import { ClusterMuxClient } from '../src/cluster/tunnels/cluster-mux.client.js';
import { ClusterMuxEndpoint } from '../src/cluster/tunnels/cluster-mux.endpoint.js';
import { CLUSTER_AUTH_HEADER, signClusterRequest } from '../src/cluster/internal-auth.js';
import { WsproxyEvents } from '../src/common/events.js';
import { DrainService } from '../src/lifecycle/drain.service.js';
import { TunnelClient, TunnelRefusedError } from '../src/tunnel/client/tunnel-client.js';
import { TunnelHttpRouter } from '../src/tunnel/http/tunnel-http.router.js';
import { TunnelService } from '../src/tunnel/tunnel.service.js';
import { dial, readBytes } from './support/tcp-client.js';
import { startApp, type TestApp } from './support/app.js';
import { startServiceProcess, type ServiceProcess } from './support/process.js';
import { assertExpiringUnrenewed, clusterEnv, redisCommand, TestRedis, TEST_CLUSTER_SECRET } from './support/redis.js';
import { PORT_PREFIX, portKey, replicaPortsKey, tunnelKey } from '../src/cluster/tunnels/tunnel-keys.js';
import { REPLICAS_KEY } from '../src/cluster/cluster-keys.js';
import { livenessTtlMs } from '../src/cluster/cluster-settings.js';
import { ClusterRedis } from '../src/cluster/cluster-redis.service.js';
import { within } from './support/within.js';
import { UPGRADE_HEADERS, rawRequest } from './support/raw-http.js';
import { assertEchoes, attachWebSocketEchoApp, type WebSocketEchoApp } from './support/websocket-echo-app.js';
import { echoTarget, randomPayload, type TestTarget } from './support/targets.js';
import { closed, expectRefusal, openWs } from './support/ws-client.js';
import { dataFrame, httpTo, RawTunnel, startHttpService, subdomainOf, tunnelEnv, TUNNEL_DOMAIN, waitFor, type HttpResult, type HttpService } from './support/tunnel.js';
import { expectCoalescedPongs } from './support/ping-flood.js';
import { Opcode, clientFrame } from './support/ws-frames.js';
import { openRawWebSocket } from './support/raw-websocket.js';
import { assertHeldBounded, nextAccepted, trickleFrame, TRICKLE_BYTES } from './support/trickle.js';
import { JwksServer, makeKey, mintToken } from './support/jwks.js';
import { clockModule, ManualClock } from './support/clock.js';

const MiB = 1024 * 1024;
const HOST_A = '127.0.0.2';
const HOST_B = '127.0.0.3';

/** Whether a TCP connection to host:port is accepted and stays open for a moment. */
/** A port nothing listens on at `host` right now. */
async function freePort(host: string): Promise<number> {
  const server = createNetServer().listen(0, host);
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function accepts(host: string, port: number): Promise<boolean> {
  try {
    const s = await dial(port, host);
    s.destroy();
    return true;
  } catch {
    return false;
  }
}

/** Response headers without the per-response ones (`date`, connection management). */
function comparable(r: HttpResult): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < r.rawHeaders.length; i += 2) {
    const name = r.rawHeaders[i].toLowerCase();
    if (['date', 'connection', 'keep-alive'].includes(name)) continue;
    out.push([name, r.rawHeaders[i + 1]]);
  }
  return out;
}

/** A local service that answers with what it got: method, path, forwarding headers, and the body back. */
async function reflector(): Promise<HttpService> {
  return startHttpService((req, body, res) => {
    res.setHeader('x-method', req.method ?? '');
    res.setHeader('x-path', req.url ?? '');
    res.setHeader('x-forwarded-for-seen', String(req.headers['x-forwarded-for']));
    res.setHeader('x-forwarded-host-seen', String(req.headers['x-forwarded-host']));
    res.setHeader('x-host-seen', String(req.headers.host));
    res.setHeader('x-internal-seen', Object.keys(req.headers).filter((h) => h.startsWith('x-wsproxy')).join(',') || 'none');
    res.setHeader('content-type', 'application/octet-stream');
    res.statusCode = req.url?.startsWith('/status/') ? Number(req.url.slice(8)) : 200;
    res.end(body);
  });
}

/** An origin with the WebSocket echo app (test/support/websocket-echo-app.ts), behind a v2 tunnel. */
interface WebSocketOrigin extends WebSocketEchoApp {
  readonly target: string;
}

async function webSocketOrigin(): Promise<WebSocketOrigin> {
  const server = createServer((_req, res) => res.end('http'));
  const app = attachWebSocketEchoApp(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    target: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    get lastUpgrade() {
      return app.lastUpgrade;
    },
    closes: app.closes,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        app.close();
        server.close(() => resolve());
      }),
  };
}

describe('tunnels across replicas', () => {
  let redis: TestRedis;
  let a: TestApp;
  let b: TestApp;
  let service: HttpService;
  let echo: TestTarget;
  let client: TunnelClient;
  let host: string;
  let wsOrigin: WebSocketOrigin;
  /** A protocol v2 tunnel on replica A, to the WebSocket origin. */
  let v2: TunnelClient;
  let v2Host: string;
  let env: Record<string, string>;

  before(async () => {
    redis = await TestRedis.start();
    service = await reflector();
    echo = await echoTarget();
    wsOrigin = await webSocketOrigin();
    env = clusterEnv(redis, await tunnelEnv({}, 6));
    a = await startApp({ ...env, TUNNEL_BIND_HOST: HOST_A });
    b = await startApp({ ...env, TUNNEL_BIND_HOST: HOST_B });
    client = await TunnelClient.connect({ proxy: `${a.wsUrl}/tunnel`, to: service.target, tcpTo: `127.0.0.1:${echo.port}` });
    host = `${client.subdomain}.${TUNNEL_DOMAIN}`;
    v2 = await TunnelClient.connect({ proxy: `${a.wsUrl}/tunnel`, to: wsOrigin.target, protocol: 2 });
    v2Host = `${v2.subdomain}.${TUNNEL_DOMAIN}`;
  });
  after(async () => {
    await v2?.close();
    await client?.close();
    await b?.close();
    await a?.close();
    await service?.close();
    await echo?.close();
    await wsOrigin?.close();
    await redis?.close();
  });

  it('answers a GET arriving at the other replica exactly as the owner does', async () => {
    const forwarded: boolean[] = [];
    const events = b.app.get(WsproxyEvents);
    const onHttp = (e: { forwarded: boolean }): void => void forwarded.push(e.forwarded);
    events.on('tunnel.http', onHttp);
    const atOwner = await httpTo(a.port, host, { path: '/hello?x=1', headers: { 'x-custom': 'kept' } });
    const atOther = await httpTo(b.port, host, { path: '/hello?x=1', headers: { 'x-custom': 'kept' } });
    events.off('tunnel.http', onHttp);
    assert.equal(atOther.status, 200);
    assert.equal(atOther.status, atOwner.status);
    assert.deepEqual(comparable(atOther), comparable(atOwner));
    assert.deepEqual(atOther.body, atOwner.body);
    assert.equal(atOther.headers['x-path'], '/hello?x=1');
    assert.equal(atOther.headers['x-host-seen'], host);
    assert.equal(atOther.headers['x-forwarded-host-seen'], host);
    assert.equal(atOther.headers['x-forwarded-for-seen'], '127.0.0.1');
    assert.equal(atOther.headers['x-internal-seen'], 'none', 'no internal header reaches the tunnel client');
    assert.deepEqual(forwarded, [true]);
    // A requester cannot pose as the entry replica: its own internal headers are dropped before forwarding.
    const spoofed = await httpTo(b.port, host, { headers: { 'x-wsproxy-client-ip': '6.6.6.6', 'x-wsproxy-tunnel-host': 'evil.example' } });
    assert.equal(spoofed.headers['x-forwarded-for-seen'], '127.0.0.1');
    assert.equal(spoofed.headers['x-host-seen'], host);
    assert.equal(spoofed.headers['x-internal-seen'], 'none');
  });

  it('forwards a POST with a binary body and passes statuses through', async () => {
    const body = randomPayload(3 * MiB + 17);
    const atOther = await httpTo(b.port, host, { method: 'POST', path: '/upload', body, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(atOther.status, 200);
    assert.equal(atOther.headers['x-method'], 'POST');
    assert.ok(atOther.body.equals(body), 'the body came back byte-exactly');
    const chunked = await httpTo(b.port, host, { method: 'PUT', path: '/status/201', body: body.subarray(0, 100_000), chunked: true });
    assert.equal(chunked.status, 201);
    assert.ok(chunked.body.equals(body.subarray(0, 100_000)));
    const head = await httpTo(b.port, host, { method: 'HEAD', path: '/status/404' });
    assert.equal(head.status, 404);
    assert.equal(head.body.length, 0);
  });

  it('answers a HEAD arriving at the other replica with the Content-Length a GET would have, as the owner does (v1 and v2)', async () => {
    const sized = await startHttpService((req, _body, res) => {
      res.setHeader('content-type', 'text/plain');
      res.setHeader('content-length', '1234');
      res.end(req.method === 'HEAD' ? undefined : 'x'.repeat(1234));
    });
    const tunnels = [
      await TunnelClient.connect({ proxy: `${a.wsUrl}/tunnel`, to: sized.target }),
      await TunnelClient.connect({ proxy: `${a.wsUrl}/tunnel`, to: sized.target, protocol: 2 }),
    ];
    try {
      for (const t of tunnels) {
        const sizedHost = `${t.subdomain}.${TUNNEL_DOMAIN}`;
        const atOwner = await httpTo(a.port, sizedHost, { method: 'HEAD', path: '/file' });
        const atOther = await httpTo(b.port, sizedHost, { method: 'HEAD', path: '/file' });
        assert.equal(atOwner.headers['content-length'], '1234', `owner, protocol v${t.protocol}`);
        assert.equal(atOther.status, atOwner.status);
        assert.deepEqual(comparable(atOther), comparable(atOwner), `other replica, protocol v${t.protocol}`);
        assert.equal(atOther.body.length, 0);
        // A GET after it on the other replica is still framed by the body it carries.
        const get = await httpTo(b.port, sizedHost, { path: '/file' });
        assert.equal(get.headers['content-length'], '1234');
        assert.equal(get.body.length, 1234);
      }
    } finally {
      for (const t of tunnels) await t.close();
      await sized.close();
    }
  });

  it('applies the body limit and answers 404 for a subdomain no replica holds', async () => {
    const unknown = await httpTo(b.port, `0123456789abcdef.${TUNNEL_DOMAIN}`);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.toString(), 'tunnel not found\n');
    // Declared: answered before any body byte is sent, so the answer can be read whatever the proxy does next.
    const declared = await rawRequest(b.port, 'POST / HTTP/1.1', { host, headers: `Content-Length: ${11 * MiB}\r\n` });
    assert.equal(declared.status, 413, declared.text);
    // Counted (chunked): the proxy may close while the upload is still going, so the client can see the reset
    // before the 413; any other failure (the replica down, a refused connection) is not the limit at work.
    const tooLarge = await httpTo(b.port, host, { method: 'POST', body: Buffer.alloc(11 * MiB), chunked: true }).catch((err: unknown) => err);
    if (tooLarge instanceof Error) assert.ok(['ECONNRESET', 'EPIPE'].includes((tooLarge as NodeJS.ErrnoException).code ?? ''), String(tooLarge));
    else assert.equal((tooLarge as HttpResult).status, 413);
  });

  it('pipes a raw TCP connection entering through the other replica to the tunnel (1 MiB echo)', async () => {
    const port = client.rawPort;
    assert.ok(port > 0);
    const following = b.app.get(TunnelTcpForwarding);
    await waitFor(() => following.followedPorts().includes(port), 5000, 'replica B listening on the tunnel port');
    const forwarded: boolean[] = [];
    const onTcp = (e: { forwarded: boolean }): void => void forwarded.push(e.forwarded);
    b.app.get(WsproxyEvents).on('tunnel.tcp', onTcp);
    const s = await dial(port, HOST_B);
    const payload = randomPayload(MiB);
    const got = readBytes(s, payload.length);
    s.write(payload);
    assert.ok((await got).equals(payload), '1 MiB echoed byte-exactly');
    s.end();
    b.app.get(WsproxyEvents).off('tunnel.tcp', onTcp);
    assert.deepEqual(forwarded, [true]);
    // The owner does not follow its own port; it listens on it as on a single node.
    assert.ok(!a.app.get(TunnelTcpForwarding).followedPorts().includes(port));
    assert.ok(await accepts(HOST_A, port));
  });

  it('ends a raw TCP connection entering through the other replica as the owner ends it: a FIN after every byte for a closed stream, a reset for one cut short', async () => {
    /** How `sock` ended: 'FIN' or the error code, with what it read. */
    const ending = (sock: Socket): Promise<{ how: string; text: string }> => {
      const chunks: Buffer[] = [];
      sock.on('data', (c: Buffer) => chunks.push(c));
      return new Promise((resolve) => {
        sock.once('end', () => resolve({ how: 'FIN', text: Buffer.concat(chunks).toString() }));
        sock.once('error', (err: NodeJS.ErrnoException) => resolve({ how: err.code ?? 'error', text: Buffer.concat(chunks).toString() }));
      });
    };
    const { tunnel, ready } = await RawTunnel.open(a.wsUrl);
    try {
      const port = ready.rawPort as number;
      await waitFor(() => b.app.get(TunnelTcpForwarding).followedPorts().includes(port), 5000, 'replica B listening on the tunnel port');
      const whole = await dial(port, HOST_B);
      const o1 = await tunnel.nextJson<{ connId: string }>('tcp_open');
      const e1 = ending(whole);
      tunnel.send(dataFrame(o1.connId, Buffer.from('all of it')));
      tunnel.sendJson({ type: 'tcp_close', connId: o1.connId });
      assert.deepEqual(await within(e1, 5000, 'the whole stream'), { how: 'FIN', text: 'all of it' });
      const cut = await dial(port, HOST_B);
      const o2 = await tunnel.nextJson<{ connId: string }>('tcp_open');
      const e2 = ending(cut);
      tunnel.send(dataFrame(o2.connId, Buffer.from('the first half')));
      await waitFor(() => cut.bytesRead === 14, 5000, 'the first half at the requester');
      // The tunnel vanishes: the owner resets its side of the splice, and the entry passes the reset on.
      tunnel.ws.terminate();
      assert.deepEqual(await within(e2, 5000, 'the cut stream'), { how: 'ECONNRESET', text: 'the first half' });
    } finally {
      await tunnel.close();
    }
  });

  it('carries a FIN that reaches the entry replica before the owner has taken the piped connection (a half-close without a byte)', async () => {
    const port = client.rawPort;
    await waitFor(() => b.app.get(TunnelTcpForwarding).followedPorts().includes(port), 5000, 'replica B listening on the tunnel port');
    const s = await dial(port, HOST_B);
    try {
      const ended = new Promise<void>((r) => s.once('end', () => r()));
      s.resume();
      // At once: B is still asking the owner to accept the connection when the FIN arrives.
      s.end();
      // The echo service ends once the requester's FIN reaches it; its FIN comes back, as on the owner's own port.
      await within(ended, 5000, 'the echo service’s FIN back through the entry replica');
    } finally {
      s.destroy();
    }
  });

  it('carries every forwarded request on one channel per owner, and opens a new one when it drops', async () => {
    const channels = b.app.get(ClusterMuxClient);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => httpTo(b.port, host, { path: `/n/${i}` })));
    results.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-path'], `/n/${i}`);
    });
    assert.equal(channels.channelCount, 1);
    assert.equal(a.app.get(ClusterMuxEndpoint).channelCount, 1);
    a.app.get(ClusterMuxEndpoint).dropChannels();
    await waitFor(() => channels.channelCount === 0, 5000, 'the entry replica to see its channel gone');
    const again = await httpTo(b.port, host, { path: '/again' });
    assert.equal(again.status, 200);
    assert.equal(again.headers['x-path'], '/again');
    assert.equal(channels.channelCount, 1);
  });

  it('keeps an idle channel past three heartbeats: the owner answers the entry’s pings', async () => {
    const endpoint = a.app.get(ClusterMuxEndpoint);
    assert.equal((await httpTo(b.port, host, { path: '/before-idle' })).status, 200);
    const accepted = endpoint.channelsAccepted;
    // Heartbeat 200 ms here: the entry pings every second and drops a channel silent for three.
    await new Promise((r) => setTimeout(r, 4500));
    assert.equal((await httpTo(b.port, host, { path: '/after-idle' })).status, 200);
    assert.equal(endpoint.channelsAccepted, accepted, 'the same channel, not a new one');
  });

  it('answers a flood of pings on a channel with the latest, not a pong queued per ping', async () => {
    const endpoint = a.app.get(ClusterMuxEndpoint);
    const before = endpoint.channelCount;
    const ws = await openRawChannel(a);
    try {
      await expectCoalescedPongs(ws, 100_000);
    } finally {
      ws.terminate();
      await waitFor(() => endpoint.channelCount === before, 5000, 'the owner to forget the channel');
    }
  });

  it('drops a channel whose entry went silent (no frame, no ping) for three heartbeats', async () => {
    const endpoint = a.app.get(ClusterMuxEndpoint);
    const before = endpoint.channelCount;
    const ws = await openRawChannel(a);
    assert.equal(endpoint.channelCount, before + 1);
    const opened = Date.now();
    // A silent client: `ws` answers the owner's nothing, and sends no ping of its own.
    await new Promise((resolve) => ws.once('close', resolve));
    const after = Date.now() - opened;
    // Heartbeat 200 ms here: three beats of at least a second each, checked every second.
    assert.ok(after >= 2500 && after < 6000, `dropped after ${after} ms`);
    await waitFor(() => endpoint.channelCount === before, 2000, 'the owner to forget the channel');
  });

  it('holds a frame trickled a byte per read on a channel in a bounded number of Buffers, not one per read', async () => {
    const endpoint = a.app.get(ClusterMuxEndpoint);
    const accepted = nextAccepted((endpoint as unknown as { wss: WebSocketServer }).wss);
    const signed = `${CLUSTER_AUTH_HEADER}: ${signClusterRequest(TEST_CLUSTER_SECRET, 'GET', MUX_PATH)}`;
    const socket = await openRawWebSocket(a.port, MUX_PATH, `127.0.0.1:${a.port}`, [signed]);
    try {
      // A frame larger than what is sent: still arriving, all of it held (a whole one would go to the channel's session).
      // Half the usual bytes: the channel is dropped after 3 s without a whole frame or a ping.
      const bytes = TRICKLE_BYTES / 2;
      assertHeldBounded(await trickleFrame(socket, await accepted, randomPayload(bytes), 2 * bytes), 'the channel');
    } finally {
      socket.destroy();
    }
  });

  it('refuses the internal tunnel endpoints without the secret (401) or with a wrong one (403)', async () => {
    let challenge: string | undefined;
    const channelStatus = (headers: Record<string, string>): Promise<number> =>
      new Promise((resolve) => {
        const ws = new WebSocket(`${a.wsUrl}${MUX_PATH}`, { headers });
        ws.on('open', () => {
          ws.terminate();
          resolve(101);
        });
        ws.on('unexpected-response', (_req, res) => {
          res.resume();
          challenge = res.headers['www-authenticate'];
          resolve(res.statusCode ?? 0);
        });
        ws.on('error', () => undefined);
      });
    assert.equal(await channelStatus({}), 401);
    assert.equal(challenge, 'WsproxyCluster', 'a 401 names the scheme (RFC 9110 §11.6.1)');
    assert.equal(await channelStatus({ [CLUSTER_AUTH_HEADER]: signClusterRequest('not-the-cluster-secret-at-all', 'GET', MUX_PATH) }), 403);
    assert.equal(await channelStatus({ [CLUSTER_AUTH_HEADER]: signClusterRequest(TEST_CLUSTER_SECRET, 'GET', MUX_PATH, Date.now() - 10 * 60_000) }), 403);
    assert.equal(await channelStatus({ [CLUSTER_AUTH_HEADER]: signClusterRequest(TEST_CLUSTER_SECRET, 'GET', MUX_PATH) }), 101);

    const tcpPath = `/_cluster/tunnels/${client.subdomain}/tcp`;
    const unsigned = await upgradeResponse(a.port, tcpPath, {});
    assert.equal(unsigned.status, 401);
    assert.equal(unsigned.headers['www-authenticate'], 'WsproxyCluster');
    assert.equal(await upgradeStatus(a.port, tcpPath, { [CLUSTER_AUTH_HEADER]: signClusterRequest('not-the-cluster-secret-at-all', 'GET', tcpPath) }), 403);
  });

  it('carries a WebSocket entering through the other replica to a v2 tunnel: text, 1 MiB binary, subprotocol, the app’s close code', async () => {
    const events: { status: number; forwarded: boolean }[] = [];
    const ownerEvents: unknown[] = [];
    const onB = (e: { status: number; forwarded: boolean }): void => void events.push(e);
    const onA = (e: unknown): void => void ownerEvents.push(e);
    b.app.get(WsproxyEvents).on('tunnel.http', onB);
    a.app.get(WsproxyEvents).on('tunnel.http', onA);
    const ws = await openWs(`ws://127.0.0.1:${b.port}/echo-ws?room=1`, {
      headers: { host: v2Host, cookie: 'sid=secret', origin: 'https://app.example', 'x-wsproxy-client-ip': '6.6.6.6' },
      protocols: ['x', 'chat'],
    });
    try {
      assert.equal(ws.protocol, 'chat');
      const seen = wsOrigin.lastUpgrade!;
      assert.equal(seen.url, '/echo-ws?room=1');
      assert.equal(seen.headers.host, v2Host);
      assert.equal(seen.headers.origin, 'https://app.example');
      assert.equal(seen.headers['x-forwarded-host'], v2Host);
      assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
      assert.equal(seen.headers.cookie, undefined, 'Cookie does not reach the origin');
      assert.deepEqual(
        Object.keys(seen.headers).filter((h) => h.startsWith('x-wsproxy')),
        [],
        'no internal header reaches the origin',
      );

      await assertEchoes(ws, 'ü'.repeat(1000), randomPayload(MiB));

      const closing = closed(ws);
      ws.send('close-me');
      assert.deepEqual(await closing, { code: 4321, reason: 'bye from the app' });
    } finally {
      ws.terminate();
    }
    await waitFor(() => events.length > 0, 5000, 'the forwarded upgrade reported on the entry replica');
    b.app.get(WsproxyEvents).off('tunnel.http', onB);
    a.app.get(WsproxyEvents).off('tunnel.http', onA);
    assert.deepEqual(events, [{ status: 101, forwarded: true }]);
    assert.deepEqual(ownerEvents, [], 'counted once, by the entry replica');
    // The owner held the per-IP slot for the WebSocket's life; the entry only for the handshake.
    await waitFor(() => a.app.get(TunnelHttpRouter).inFlightFrom('127.0.0.1') === 0, 5000, 'the owner’s per-IP slot released');
    assert.equal(b.app.get(TunnelHttpRouter).inFlightFrom('127.0.0.1'), 0);
  });

  it('passes the requester’s close code through the other replica to the app', async () => {
    const before = wsOrigin.closes.length;
    const ws = await openWs(`ws://127.0.0.1:${b.port}/echo-ws`, { headers: { host: v2Host } });
    ws.close(4001, 'requester done');
    await closed(ws);
    await waitFor(() => wsOrigin.closes.length > before, 5000, 'the origin’s WebSocket closed');
    assert.deepEqual(wsOrigin.closes.at(-1), { code: 4001, reason: 'requester done' });
  });

  it('a requester that leaves its WebSocket upgrade at the other replica before the owner answers frees its slots at once, early bytes or not', async () => {
    for (const early of [null, clientFrame(Opcode.TEXT, 'hi')]) {
      const s = await dial(b.port);
      s.on('error', () => undefined);
      const path = `/hang?early=${early !== null}`;
      try {
        s.write(`GET ${path} HTTP/1.1\r\nHost: ${v2Host}\r\n${UPGRADE_HEADERS}\r\n`);
        await waitFor(() => wsOrigin.lastUpgrade?.url === path, 5000, 'the upgrade reaches the app');
        assert.equal(b.app.get(TunnelHttpRouter).inFlightFrom('127.0.0.1'), 1);
        // Bytes nobody reads kept Node from reporting the FIN behind them: the slot waited for the response timeout.
        if (early) s.end(early);
        else s.end();
        await waitFor(() => b.app.get(TunnelHttpRouter).inFlightFrom('127.0.0.1') === 0, 3000, `the entry’s per-IP slot released (early ${early !== null}, destroyed ${s.destroyed}, owner ${a.app.get(TunnelHttpRouter).inFlightFrom('127.0.0.1')})`);
        await waitFor(() => a.app.get(TunnelHttpRouter).inFlightFrom('127.0.0.1') === 0, 3000, 'the owner’s per-IP slot released');
      } finally {
        s.destroy();
      }
    }
  });

  it('relays refusals of upgrades through the other replica: the origin’s, v1’s 501, 404 for a subdomain no replica holds', async () => {
    assert.deepEqual(await expectRefusal(`ws://127.0.0.1:${b.port}/forbidden`, { headers: { host: v2Host } }), { status: 403, body: 'forbidden' });
    const v1 = await expectRefusal(`ws://127.0.0.1:${b.port}/echo-ws`, { headers: { host } });
    assert.deepEqual(v1, { status: 501, body: 'WebSockets through this tunnel need tunnel protocol v2' });
    const unknown = await expectRefusal(`ws://127.0.0.1:${b.port}/echo-ws`, { headers: { host: `0123456789abcdef.${TUNNEL_DOMAIN}` } });
    assert.deepEqual(unknown, { status: 404, body: 'tunnel not found' });
  });

  it('counts an upgrade it refuses for a subdomain no replica holds in wsproxy_tunnel_http_requests_total, as a plain request', async () => {
    const fourXx = async (): Promise<number> => {
      const text = await (await fetch(`${b.baseUrl}/metrics`)).text();
      return Number(/^wsproxy_tunnel_http_requests_total\{status_class="4xx"\} (\d+)$/m.exec(text)![1]);
    };
    const before = await fourXx();
    const unknown = await expectRefusal(`ws://127.0.0.1:${b.port}/echo-ws`, { headers: { host: `0123456789abcdef.${TUNNEL_DOMAIN}` } });
    assert.equal(unknown.status, 404);
    await waitFor(async () => (await fourXx()) === before + 1, 5000, 'the 404 to be counted');
  });

  it('refuses the internal WebSocket endpoint without the secret (401) or with a wrong one (403); never on a tunnel host', async () => {
    const path = `/_cluster/tunnels/${v2.subdomain}/ws?path=${encodeURIComponent('/echo-ws')}`;
    const handshake = { upgrade: 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' };
    const forwarded = { 'x-wsproxy-tunnel-host': v2Host, 'x-wsproxy-client-ip': '127.0.0.9' };
    const unsigned = await upgradeResponse(a.port, path, { ...handshake, ...forwarded });
    assert.equal(unsigned.status, 401);
    assert.equal(unsigned.headers['www-authenticate'], 'WsproxyCluster');
    const wrong = signClusterRequest('not-the-cluster-secret-at-all', 'GET', path);
    assert.equal(await upgradeStatus(a.port, path, { ...handshake, ...forwarded, [CLUSTER_AUTH_HEADER]: wrong }), 403);
    const good = signClusterRequest(TEST_CLUSTER_SECRET, 'GET', path);
    assert.equal(await upgradeStatus(a.port, path, { ...handshake, ...forwarded, [CLUSTER_AUTH_HEADER]: good }), 101);
    const unknownPath = `/_cluster/tunnels/0123456789abcdef/ws?path=%2F`;
    const unknown = signClusterRequest(TEST_CLUSTER_SECRET, 'GET', unknownPath);
    assert.equal(await upgradeStatus(a.port, unknownPath, { ...handshake, ...forwarded, [CLUSTER_AUTH_HEADER]: unknown }), 404);

    // Through a tunnel subdomain the path is the tunnel's own, signed or not.
    const ws = await openWs(`ws://127.0.0.1:${b.port}${path}`, { headers: { host: v2Host, [CLUSTER_AUTH_HEADER]: good } });
    ws.terminate();
    assert.equal(wsOrigin.lastUpgrade!.url, path);
  });

  it('never serves the internal endpoints through a tunnel subdomain', async () => {
    const before = service.requests;
    const path = MUX_PATH;
    const r = await httpTo(b.port, host, { path, headers: { [CLUSTER_AUTH_HEADER]: signClusterRequest(TEST_CLUSTER_SECRET, 'GET', path) } });
    // The tunnel's own service answered, with the path as asked.
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-path'], path);
    assert.equal(service.requests, before + 1);
  });

  it('drains what entered through a replica for a tunnel held elsewhere: a WebSocket and a raw TCP connection run on, then are cut', async () => {
    // A drain long past the half second below, so that a stalled test process does not see it end before the echoes.
    const shutdownTimeoutMs = 6000;
    const c = await startApp({ ...env, TUNNEL_BIND_HOST: '127.0.0.4', SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs) });
    let closing: Promise<void> | null = null;
    let ws: WebSocket | null = null;
    let tcp: Socket | null = null;
    try {
      await waitFor(() => c.app.get(TunnelTcpForwarding).followedPorts().includes(client.rawPort), 5000, 'the third replica follows the raw port');
      const socket = await openWs(`ws://127.0.0.1:${c.port}/echo-ws?room=drain`, { headers: { host: v2Host } });
      ws = socket;
      const conn = await dial(client.rawPort, '127.0.0.4');
      tcp = conn;
      const tcpClosed = new Promise<void>((r) => conn.once('close', () => r()));
      const tcpReset = new Promise<string | undefined>((r) => conn.once('error', (err: NodeJS.ErrnoException) => r(err.code)));
      const drain = c.app.get(DrainService);
      await waitFor(() => drain.liveCount === 2, 5000, 'both tracked by the drain');
      const started = Date.now();
      closing = c.close();
      await new Promise((r) => setTimeout(r, 500));
      // Still carrying both, half a second into the drain.
      await within(assertEchoes(socket, 'still here', randomPayload(1024)), 10_000, 'the WebSocket echoing during the drain');
      const echoed = readBytes(conn, 4);
      conn.write('ping');
      assert.equal((await within(echoed, 10_000, 'the TCP echo during the drain')).toString(), 'ping');
      const { code } = await within(closed(socket), shutdownTimeoutMs + 15_000, 'the WebSocket cut at the drain’s end');
      assert.equal(code, 1006, 'only bytes pass the entry: no close frame of its own');
      await within(tcpClosed, 5000, 'the TCP connection cut at the drain’s end');
      assert.equal(await within(tcpReset, 1000, 'the reset'), 'ECONNRESET', 'cut short: a reset, not a FIN');
      assert.ok(Date.now() - started >= shutdownTimeoutMs - 100, `cut after ${Date.now() - started} ms, not before the timeout`);
      await within(closing, 5000, 'the replica closes right after its drain');
    } finally {
      // Without drain tracking the close would wait on these for good.
      ws?.terminate();
      tcp?.destroy();
      await (closing ?? c.close());
    }
  });

  it('takes a tunnel record in Redis whose owner URL is not an http(s) URL as no tunnel: 404, no forward, the replica lives', async () => {
    const store = b.app.get(ClusterRedis).client;
    const forged = ['abc0000000000101', 'abc0000000000102'];
    const record = (subdomain: string, url: unknown): string =>
      JSON.stringify({ subdomain, user: 'anonymous', clientIp: '127.0.0.1', createdAt: 1, replica: 'feedfeedfeedfeed', url });
    await store.set(tunnelKey(forged[0]!), record(forged[0]!, 'not a url'), 'EX', 60);
    await store.set(tunnelKey(forged[1]!), record(forged[1]!, 123), 'EX', 60);
    try {
      for (const sub of forged) {
        const plain = await httpTo(b.port, `${sub}.${TUNNEL_DOMAIN}`);
        assert.deepEqual([plain.status, plain.body.toString()], [404, 'tunnel not found\n'], sub);
        assert.equal((await expectRefusal(`ws://127.0.0.1:${b.port}/chat`, { headers: { host: `${sub}.${TUNNEL_DOMAIN}` } })).status, 404, sub);
      }
      assert.equal((await httpTo(b.port, '127.0.0.1', { path: '/health' })).status, 200, 'replica B is still up');
    } finally {
      await store.del(...forged.map(tunnelKey));
    }
  });

  it('does not follow a raw port whose tunnel record has an owner URL that is not http(s); it follows one that has', async () => {
    const store = b.app.get(ClusterRedis).client;
    const following = b.app.get(TunnelTcpForwarding);
    const replica = 'feedfeedfeedfeed';
    const ports = [await freePort(HOST_B), await freePort(HOST_B)];
    const subs = ['abc0000000000aaa', 'abc0000000000bbb'];
    const urls = ['not a url', 'http://127.0.0.1:1'];
    await store.zadd(REPLICAS_KEY, Date.now() + 120_000, replica);
    for (let i = 0; i < 2; i++) {
      await store.hset(replicaPortsKey(replica), String(ports[i]), subs[i]!);
      await store.set(portKey(ports[i]!), `${replica} ${subs[i]}`, 'EX', 60);
      await store.set(
        tunnelKey(subs[i]!),
        JSON.stringify({ subdomain: subs[i], user: 'anonymous', clientIp: '127.0.0.1', createdAt: 1, replica, url: urls[i] }),
        'EX',
        60,
      );
    }
    try {
      // The well-formed one shows the listing reached B; by then the other was listed too, and skipped.
      await waitFor(() => following.followedPorts().includes(ports[1]!), 5000, 'replica B following the well-formed record’s port');
      assert.ok(!following.followedPorts().includes(ports[0]!), 'no listener for the record B could not act on');
      const s = await dial(ports[1]!, HOST_B);
      await within(new Promise((resolve) => s.once('close', resolve)), 5000, 'the unreachable owner’s connection closed');
      assert.equal((await httpTo(b.port, '127.0.0.1', { path: '/health' })).status, 200, 'replica B is still up');
    } finally {
      await store.zrem(REPLICAS_KEY, replica);
      await store.del(replicaPortsKey(replica), ...ports.map((p) => portKey(p!)), ...subs.map(tunnelKey));
    }
  });

  it('counts tunnels per user cluster-wide', async () => {
    const key = await makeKey();
    const jwks = await JwksServer.start([key]);
    const env = clusterEnv(redis, await tunnelEnv({ CLERK_JWKS_URL: jwks.url, MAX_TUNNELS_PER_USER: '1', TUNNEL_TCP_ENABLED: 'false' }, 2));
    const c = await startApp({ ...env, TUNNEL_BIND_HOST: HOST_A });
    const d = await startApp({ ...env, TUNNEL_BIND_HOST: HOST_B });
    const token = (): Promise<string> => mintToken(key, { sub: 'carol-cluster-count' });
    const own = await TunnelClient.connect({ proxy: `${c.wsUrl}/tunnel`, token: await token() });
    try {
      const refused = await TunnelClient.connect({ proxy: `${d.wsUrl}/tunnel`, token: await token() }).catch((err: unknown) => err);
      assert.ok(refused instanceof TunnelRefusedError, String(refused));
      assert.equal(refused.status, 429);
      assert.equal(refused.body, 'too many tunnels for this user');
    } finally {
      await own.close();
      await d.close();
      await c.close();
      await jwks.stop();
    }
  });
});

/** A channel to `replica`'s mux endpoint, signed as another replica would, with nothing on it. */
async function openRawChannel(replica: TestApp): Promise<WebSocket> {
  const ws = new WebSocket(`${replica.wsUrl}${MUX_PATH}`, { headers: { [CLUSTER_AUTH_HEADER]: signClusterRequest(TEST_CLUSTER_SECRET, 'GET', MUX_PATH) } });
  ws.on('error', () => undefined);
  await new Promise((resolve) => ws.once('open', resolve));
  return ws;
}

function upgradeStatus(port: number, path: string, headers: Record<string, string>): Promise<number> {
  return upgradeResponse(port, path, headers).then((res) => res.status);
}

/** The status of an upgrade request (101 once switched) and, for a refusal, its headers. */
function upgradeResponse(port: number, path: string, headers: Record<string, string>): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { connection: 'Upgrade', upgrade: 'wsproxy-tcp', ...headers }, agent: false });
    req.on('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
    });
    req.on('upgrade', (res, socket: Socket) => {
      socket.destroy();
      resolve({ status: 101, headers: res.headers });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('owner loss and Redis restart', () => {
  let redis: TestRedis;
  let service: HttpService;
  let echo: TestTarget;
  let a: ServiceProcess | undefined;
  let b: TestApp | undefined;
  const clients: TunnelClient[] = [];

  before(async () => {
    redis = await TestRedis.start();
    service = await reflector();
    echo = await echoTarget();
  });
  after(async () => {
    for (const c of clients) await c.close();
    a?.child.kill('SIGKILL');
    await b?.close();
    await service.close();
    await echo.close();
    await redis.close();
  });

  /**
   * Two in-process replicas on this Redis, the entry (kept in `b` for the
   * `after` hook) and the owner, with `extra` settings; closed after `test`.
   */
  async function withReplicas(extra: Record<string, string>, test: (entry: TestApp, owner: TestApp) => Promise<void>): Promise<void> {
    const env = clusterEnv(redis, await tunnelEnv(extra, 4));
    b = await startApp({ ...env, TUNNEL_BIND_HOST: HOST_B });
    const c = await startApp({ ...env, TUNNEL_BIND_HOST: HOST_A });
    try {
      await test(b, c);
    } finally {
      await c.close();
      await b.close();
      b = undefined;
    }
  }

  it('closes a tunnel (1012) whose raw port another replica holds after its own claim lapsed', async () => {
    await withReplicas({}, async (_b, c) => {
      const client = await TunnelClient.connect({ proxy: `${c.wsUrl}/tunnel`, to: service.target, tcpTo: `127.0.0.1:${echo.port}` });
      clients.push(client);
      const port = client.rawPort;
      assert.ok(port > 0);
      // What a partition longer than the TTL leaves behind: the claim expired and
      // another replica's tunnel took the port. Written straight into Redis.
      await redisCommand(redis, ['SET', `${PORT_PREFIX}${port}`, 'another-replica 0123456789abcdef', 'PX', '60000']);
      assert.deepEqual(await within(client.closed, 5000, 'the tunnel closed'), { code: 1012, reason: 'raw port lost: reconnect' });
      // The other replica's claim is left alone.
      assert.equal(await redisCommand(redis, ['GET', `${PORT_PREFIX}${port}`]), 'another-replica 0123456789abcdef');
      await redisCommand(redis, ['DEL', `${PORT_PREFIX}${port}`]);
    });
  });

  it('gives up its raw ports (1012) when it cannot renew them for the TTL, before another replica could claim them', async () => {
    await withReplicas({}, async (_b, c) => {
      const client = await TunnelClient.connect({ proxy: `${c.wsUrl}/tunnel`, to: service.target, tcpTo: `127.0.0.1:${echo.port}` });
      clients.push(client);
      assert.ok(client.rawPort > 0);
      redis.pause(); // a partition: nothing answers
      try {
        assert.deepEqual(await within(client.closed, 5000, 'the tunnel closed'), { code: 1012, reason: 'raw port lost: reconnect' });
      } finally {
        redis.resume();
      }
    });
  });

  it('re-publishes tunnels after Redis restarts empty', async () => {
    await withReplicas({}, async (b, c) => {
      const client = await TunnelClient.connect({ proxy: `${c.wsUrl}/tunnel`, to: service.target });
      clients.push(client);
      const host = `${client.subdomain}.${TUNNEL_DOMAIN}`;
      assert.equal((await httpTo(b.port, host)).status, 200);
      await redis.restart();
      await waitFor(async () => (await httpTo(b.port, host)).status === 200, 5000, 'the tunnel re-published after the Redis restart');
      await client.close();
    });
  });

  it('answers a refusal the owner makes itself, through the other replica, exactly as the owner does (504: the tunnel never answers)', async () => {
    await withReplicas({ TUNNEL_RESPONSE_TIMEOUT_MS: '300' }, async (b, c) => {
      const { tunnel, ready } = await RawTunnel.open(c.wsUrl);
      const host = `${subdomainOf(String(ready.tunnelUrl))}.${TUNNEL_DOMAIN}`;
      const atOwner = await httpTo(c.port, host);
      const atOther = await httpTo(b.port, host);
      assert.equal(atOwner.status, 504);
      assert.equal(atOther.status, 504);
      assert.equal(atOther.body.toString(), atOwner.body.toString());
      assert.equal(atOther.headers['content-type'], atOwner.headers['content-type']);
      assert.equal(atOther.headers['cache-control'], atOwner.headers['cache-control']);
      await tunnel.close();
    });
  });

  it('gives a v1 tunnel one body share per IPv6 /64 for requests entering at another replica, as at the owner', async () => {
    // One requester's share: max(1 MiB / 8, 128 KiB) = 128 KiB; two bodies of 100 000 bytes do not fit in it.
    const extra = { TRUSTED_PROXIES: '127.0.0.0/8', TUNNEL_MAX_BODY_BYTES: '131072', TUNNEL_V1_BODY_BUFFER_BYTES: '1048576' };
    await withReplicas(extra, async (b, c) => {
      const { tunnel, ready } = await RawTunnel.open(c.wsUrl);
      const host = `${subdomainOf(String(ready.tunnelUrl))}.${TUNNEL_DOMAIN}`;
      // Header values only: nothing is dialled at these documentation addresses.
      const post = (ip: string, length: number): { req: ReturnType<typeof request>; status: Promise<number> } => {
        const req = request({ host: '127.0.0.1', port: b.port, method: 'POST', path: '/', agent: false, headers: { host, 'x-forwarded-for': ip, 'content-length': String(length) } });
        const status = new Promise<number>((resolve) => {
          req.on('response', (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          });
          req.on('error', () => resolve(-1));
        });
        req.write(Buffer.alloc(100_000, 0x61));
        return { req, status };
      };
      const held = post('2001:db8:1:2::1', 120_000);
      try {
        await waitFor(() => c.app.get(TunnelService).v1BodyBytesHeld >= 100_000, 5000, 'the first body held at the owner');
        const sameNetwork = post('2001:db8:1:2::2', 100_000);
        sameNetwork.req.end();
        const answered = tunnel.nextJson('http_request', 3000).then(
          (m) => tunnel.sendJson({ type: 'http_response', id: m.id, status: 200 }),
          () => undefined,
        );
        assert.equal(await within(sameNetwork.status, 5000, 'the second request answered'), 503);
        await answered;
      } finally {
        held.req.destroy();
        await tunnel.close();
      }
    });
  });

  it('keeps a tunnel client from spoofing the owner or breaking the channel: pseudo-headers, bad statuses, oversized heads get 502 and the channel goes on', async () => {
    await withReplicas({}, async (b, c) => {
      const { tunnel, ready } = await RawTunnel.open(c.wsUrl);
      const host = `${subdomainOf(String(ready.tunnelUrl))}.${TUNNEL_DOMAIN}`;
      const answer = async (response: Record<string, unknown>): Promise<HttpResult> => {
        const pending = httpTo(b.port, host);
        const m = await tunnel.nextJson('http_request');
        tunnel.sendJson({ type: 'http_response', id: m.id, ...response });
        return pending;
      };
      const posed = await answer({ status: 0, headers: { ':plain': 'owned' }, body: '' });
      assert.equal(posed.status, 502);
      const accepted = c.app.get(ClusterMuxEndpoint).channelsAccepted;
      const posed404 = await answer({ status: 404, headers: { ':plain': 'owned' }, body: '' });
      assert.equal(posed404.status, 404, 'a 404 with a pseudo-header is the tunnel’s own 404');
      assert.equal(posed404.body.toString(), '', 'not a refusal the owner made');
      const posed200 = await answer({ status: 200, headers: { ':plain': 'owned', ':subdomain': 'x' }, body: 'real body' });
      assert.equal(posed200.status, 200, 'a pseudo-header from a tunnel is dropped, not obeyed');
      assert.equal(posed200.body.toString(), 'real body');
      const interim = await answer({ status: 100, headers: {}, body: '' });
      assert.equal(interim.status, 502);
      const big: Record<string, string> = {};
      // 100 fields of 8 000 Latin-1 characters: within the per-field bounds, but 1.6 MB as JSON, beyond one frame.
      for (let i = 0; i < 100; i++) big[`x-big-${i}`] = 'é'.repeat(8000);
      const huge = await answer({ status: 200, headers: big, body: 'x' });
      assert.equal(huge.status, 502);
      assert.equal(huge.body.toString(), 'response head too large\n');
      // Just under the bound for the head alone, with a 64 KiB body the owner would put in the same frame.
      const near: Record<string, string> = {};
      for (let i = 0; i < 63; i++) near[`x-near-${i}`] = '"'.repeat(8180);
      const nearRes = await answer({ status: 200, headers: near, body: Buffer.alloc(64 * 1024, 7).toString('base64'), bodyEncoding: 'base64' });
      assert.equal(nearRes.status, 502, 'too large once the body rides along: refused, not sent');
      assert.equal(nearRes.body.toString(), 'response head too large\n');
      const after = await answer({ status: 200, headers: { 'content-type': 'text/plain' }, body: 'still here' });
      assert.equal(after.status, 200);
      assert.equal(after.body.toString(), 'still here');
      assert.equal(b.app.get(ClusterMuxClient).channelCount, 1);
      assert.equal(c.app.get(ClusterMuxEndpoint).channelsAccepted, accepted, 'the same channel carried all of them');
      await tunnel.close();
    });
  });

  it('through the other replica: a requester that goes away frees its slot and its stream at the owner; a chunked body over the limit gets 413', async () => {
    await withReplicas({ TUNNEL_MAX_BODY_BYTES: '1000' }, async (b, c) => {
      const { tunnel, ready } = await RawTunnel.open(c.wsUrl);
      const subdomain = subdomainOf(String(ready.tunnelUrl));
      const host = `${subdomain}.${TUNNEL_DOMAIN}`;
      const ownerSession = c.app.get(TunnelService).find(subdomain)!;

      const req = request({ host: '127.0.0.1', port: b.port, path: '/slow', headers: { host }, agent: false });
      req.on('error', () => undefined);
      req.end();
      await tunnel.nextJson('http_request');
      assert.equal(ownerSession.counts().http, 1, 'in flight at the owner');
      req.destroy();
      await waitFor(() => b.app.get(TunnelHttpRouter).inFlightFrom('127.0.0.1') === 0, 5000, 'the entry’s per-IP slot released');
      await waitFor(() => ownerSession.counts().http === 0, 5000, 'the stream gone at the owner');

      const tooLarge = await httpTo(b.port, host, { method: 'POST', body: Buffer.alloc(5000, 1), chunked: true });
      assert.equal(tooLarge.status, 413);
      assert.equal(tooLarge.body.toString(), 'request body too large\n');
      await waitFor(() => ownerSession.counts().http === 0, 5000, 'no stream left at the owner');
      await tunnel.close();
    });
  });

  it('drops a channel whose owner stopped answering (SIGSTOP) within a few heartbeats: 502, not a wait for the response timeout', async () => {
    const env = clusterEnv(redis, await tunnelEnv({}, 4));
    const owner = await startServiceProcess({ ...env, TUNNEL_BIND_HOST: HOST_A });
    b = await startApp({ ...env, TUNNEL_BIND_HOST: HOST_B });
    try {
      const { tunnel, ready } = await RawTunnel.open(`ws://127.0.0.1:${owner.port}`);
      const host = `${subdomainOf(String(ready.tunnelUrl))}.${TUNNEL_DOMAIN}`;
      const first = httpTo(b.port, host);
      const m = await tunnel.nextJson('http_request');
      tunnel.sendJson({ type: 'http_response', id: m.id, status: 200, headers: {}, body: 'ok' });
      assert.equal((await first).status, 200);
      assert.equal(b.app.get(ClusterMuxClient).channelCount, 1);

      owner.child.kill('SIGSTOP');
      const started = Date.now();
      const frozen = await httpTo(b.port, host);
      const waited = Date.now() - started;
      assert.equal(frozen.status, 502);
      assert.equal(frozen.body.toString().trim(), 'tunnel owner stopped responding');
      assert.ok(waited < 10_000, `502 after ${waited} ms`);
      owner.child.kill('SIGCONT');
      await tunnel.close().catch(() => undefined);
    } finally {
      owner.child.kill('SIGCONT');
      owner.child.kill('SIGKILL');
      await owner.exited;
      await b.close();
      b = undefined;
    }
  });

  it('answers a request waiting through the other replica 502 tunnel owner disconnected when the owner drops the channel', async () => {
    await withReplicas({}, async (entry, owner) => {
      const { tunnel, ready } = await RawTunnel.open(owner.wsUrl);
      try {
        const waiting = httpTo(entry.port, `${subdomainOf(String(ready.tunnelUrl))}.${TUNNEL_DOMAIN}`);
        await tunnel.nextJson('http_request');
        owner.app.get(ClusterMuxEndpoint).dropChannels();
        const res = await waiting;
        assert.equal(res.status, 502);
        assert.equal(res.body.toString().trim(), 'tunnel owner disconnected');
      } finally {
        await tunnel.close();
      }
    });
  });

  it('keeps serving requests through the other replica while the owner drains, then closes the channel', async () => {
    const env = clusterEnv(redis, await tunnelEnv({ SHUTDOWN_TIMEOUT_MS: '3000' }, 4));
    b = await startApp({ ...env, TUNNEL_BIND_HOST: HOST_B });
    const c = await startApp({ ...env, TUNNEL_BIND_HOST: HOST_A });
    let closing: Promise<void> | undefined;
    try {
      const { tunnel, ready } = await RawTunnel.open(c.wsUrl);
      const host = `${subdomainOf(String(ready.tunnelUrl))}.${TUNNEL_DOMAIN}`;
      const first = httpTo(b.port, host);
      const m1 = await tunnel.nextJson('http_request');
      tunnel.sendJson({ type: 'http_response', id: m1.id, status: 200, headers: {}, body: 'before' });
      assert.equal((await first).status, 200);

      const during = httpTo(b.port, host, { path: '/during-drain' });
      const m2 = await tunnel.nextJson('http_request');
      closing = c.close();
      await new Promise((r) => setTimeout(r, 300));
      tunnel.sendJson({ type: 'http_response', id: m2.id, status: 200, headers: {}, body: 'answered while draining' });
      const res = await during;
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'answered while draining');
      await tunnel.close();
      await closing;
      await waitFor(() => b!.app.get(ClusterMuxClient).channelCount === 0, 5000, 'the channel closed after the drain');
    } finally {
      if (!closing) await c.close();
      await b.close();
      b = undefined;
    }
  });

  it('removes the tunnels of a SIGKILLed owner on the other replicas within the TTL', async (t) => {
    const env = clusterEnv(redis, await tunnelEnv({}, 4));
    a = await startServiceProcess({ ...env, TUNNEL_BIND_HOST: HOST_A });
    b = await startApp({ ...env, TUNNEL_BIND_HOST: HOST_B });
    const client = await TunnelClient.connect({ proxy: `ws://127.0.0.1:${a.port}/tunnel`, to: service.target, tcpTo: `127.0.0.1:${echo.port}` });
    clients.push(client);
    const host = `${client.subdomain}.${TUNNEL_DOMAIN}`;
    const port = client.rawPort;
    assert.equal((await httpTo(b.port, host)).status, 200);
    await waitFor(() => accepts(HOST_B, port), 5000, 'replica B listening on the tunnel port');

    a.child.kill('SIGKILL');
    await a.exited;
    const killedAt = Date.now();
    const ttl = livenessTtlMs({ clusterHeartbeatMs: Number(env.CLUSTER_HEARTBEAT_MS) });
    // Within the TTL by Redis's clock, however slow this run: the record and the claim expire (-2: already gone), nothing renews them.
    for (const key of [tunnelKey(client.subdomain), portKey(port)]) await assertExpiringUnrenewed(redis, key, ttl, Number(env.CLUSTER_HEARTBEAT_MS));
    await client.closed;
    await waitFor(async () => (await redisCommand(redis, ['EXISTS', tunnelKey(client.subdomain)])) === '0', ttl + 10_000, 'the record expiring', 50);
    // As soon as the record is gone, the other replica answers 404 (its cached route lives half a beat).
    const gone = await httpTo(b.port, host);
    assert.equal(gone.status, 404);
    assert.equal(gone.body.toString(), 'tunnel not found\n');
    const goneAfter = Date.now() - killedAt;
    // Its listeners follow the next beat's listing.
    await waitFor(async () => !(await accepts(HOST_B, port)), ttl + 10_000, 'the port to stop accepting');
    t.diagnostic(`subdomain 404 after ${goneAfter} ms, port closed after ${Date.now() - killedAt} ms (TTL ${ttl} ms)`);
  });
});

describe('cached tunnel owners', () => {
  let redis: TestRedis;
  let a: TestApp;
  let b: TestApp;
  let service: HttpService;
  /** B's route cache ages by this clock, which stands still: an owner B cached stays cached however slow the run. */
  const bRouteClock = new ManualClock();

  before(async () => {
    redis = await TestRedis.start();
    service = await reflector();
    // Beats seconds apart: the owner seldom re-publishes a lost record before B is asked (see the 503 test).
    const env = clusterEnv(redis, { ...(await tunnelEnv({}, 4)), CLUSTER_HEARTBEAT_MS: '4000' });
    a = await startApp({ ...env, TUNNEL_BIND_HOST: HOST_A });
    b = await startApp({ ...env, TUNNEL_BIND_HOST: HOST_B }, [clockModule(ROUTE_CACHE_CLOCK, bRouteClock)]);
  });
  after(async () => {
    await b?.close();
    await a?.close();
    await service?.close();
    await redis?.close();
  });

  it('forgets a cached owner that answers 404 for a tunnel it no longer holds: the next request is not sent there', async () => {
    const events = b.app.get(WsproxyEvents);
    const client = await TunnelClient.connect({ proxy: `${a.wsUrl}/tunnel`, to: service.target });
    const host = `${client.subdomain}.${TUNNEL_DOMAIN}`;
    const seen: [number, boolean][] = [];
    const onHttp = (e: { status: number; forwarded: boolean }): void => void seen.push([e.status, e.forwarded]);
    events.on('tunnel.http', onHttp);
    try {
      assert.equal((await httpTo(b.port, host)).status, 200);
      await client.close();
      assert.equal((await httpTo(a.port, host)).status, 404);
      assert.equal((await httpTo(b.port, host)).status, 404);
      assert.equal((await httpTo(b.port, host)).status, 404);
      await waitFor(() => seen.length === 3, 2000, 'three requests reported at B');
      // Through A while the route was cached, A's own 404 passed on; then B looked the subdomain up afresh and answered itself.
      assert.deepEqual(seen, [
        [200, true],
        [404, true],
        [404, false],
      ]);
    } finally {
      events.off('tunnel.http', onHttp);
    }
  });

  it('answers 503, not 404, for a live tunnel whose record Redis lost, until its owner re-publishes it', async () => {
    const client = await TunnelClient.connect({ proxy: `${a.wsUrl}/tunnel`, to: service.target });
    try {
      const host = `${client.subdomain}.${TUNNEL_DOMAIN}`;
      // Never asked at B before: B has no cached owner. The owner's next beat is up to 4 s away; on a slow run
      // it may come between the flush and the request (the tunnel is found again): then it is tried again.
      let lost!: Awaited<ReturnType<typeof httpTo>>;
      for (let attempt = 1; attempt <= 3; attempt++) {
        assert.equal(await redisCommand(redis, ['FLUSHALL']), 'OK');
        lost = await httpTo(b.port, host);
        if (lost.status !== 200) break;
      }
      assert.equal(lost.status, 503, 'before, 404: "tunnel not found" for a tunnel that lives');
      assert.equal(lost.body.toString(), 'cluster state unavailable\n');
      assert.equal(lost.headers['retry-after'], '5', 'a transient refusal, as for a connection refused while the cluster state is unavailable');
      await waitFor(async () => (await httpTo(b.port, host)).status === 200, 10_000, "the owner's beat re-publishes the tunnel");
    } finally {
      await client.close();
    }
  });
});
