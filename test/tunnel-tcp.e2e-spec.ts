import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import { once } from 'node:events';
import { TunnelClient } from '../src/tunnel/client/tunnel-client.js';
import type { TunnelSession } from '../src/tunnel/core/tunnel-session.js';
import { TunnelService } from '../src/tunnel/tunnel.service.js';
import { TUNNEL_WS_HIGH_WATER } from '../src/tunnel/v1/v1-wire.js';
import { PORT_POOL, type PortPool } from '../src/tunnel/state/port-pool.js';
import { startServiceProcess } from './support/process.js';
import { dial, readBytes } from './support/tcp-client.js';
import { within } from './support/within.js';
import { closed } from './support/ws-client.js';
import { startApp, type TestApp } from './support/app.js';
import { echoTarget, floodTarget, randomPayload, sha256, sinkTarget, sourceTarget, type TestTarget } from './support/targets.js';
import { RawTunnel, dataFrame, isControl, portIsFree, tunnelEnv, waitFor } from './support/tunnel.js';

const MiB = 1024 * 1024;

/** Reads until the peer closes. */
function readAll(s: Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('close', () => resolve(Buffer.concat(chunks)));
  });
}

/** A TCP peer on the raw port `rawPort` that does not read, its `tcp_open` at the raw client, and the proxy's session of that tunnel with its WebSocket. */
async function peerThatDoesNotRead(
  app: TestApp,
  tunnel: RawTunnel,
  rawPort: number,
): Promise<{ socket: Socket; open: { connId: string }; session: TunnelSession; wire: { ws: { isPaused: boolean } } }> {
  const socket = await dial(rawPort);
  socket.pause();
  const open = await tunnel.nextJson<{ connId: string }>('tcp_open');
  const session = [...app.app.get(TunnelService).sessions().values()].find((t) => t.info.rawPort === rawPort)!;
  return { socket, open, session, wire: session.wire as unknown as { ws: { isPaused: boolean } } };
}

describe('raw TCP through a tunnel port (reference client)', () => {
  let app: TestApp;
  let echo: TestTarget;
  let client: TunnelClient;
  let portMin: number;

  before(async () => {
    const env = await tunnelEnv({}, 4);
    portMin = Number(env.TUNNEL_PORT_MIN);
    app = await startApp(env);
    echo = await echoTarget();
    client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, tcpTo: `127.0.0.1:${echo.port}` });
  });
  after(async () => {
    await client.close();
    await app.close();
    await echo.close();
  });

  it('gets the lowest port of the range', () => {
    assert.equal(client.rawPort, portMin);
  });

  it('echoes 4 MiB byte-exactly', async () => {
    const s = await dial(client.rawPort);
    const payload = randomPayload(4 * MiB);
    const got = readBytes(s, payload.length);
    s.write(payload);
    const data = await got;
    assert.equal(data.length, payload.length);
    assert.equal(sha256(data), sha256(payload));
    s.end();
    await once(s, 'close');
  });

  it('carries several connections at once', async () => {
    const sockets = await Promise.all([1, 2, 3, 4].map(() => dial(client.rawPort)));
    const payloads = sockets.map(() => randomPayload(256 * 1024));
    const results = await Promise.all(
      sockets.map((s, i) => {
        const got = readBytes(s, payloads[i].length);
        s.write(payloads[i]);
        return got;
      }),
    );
    results.forEach((r, i) => assert.equal(sha256(r), sha256(payloads[i])));
    for (const s of sockets) s.destroy();
  });

  it('downloads 4 MiB a local service sends, then closes', async () => {
    const payload = randomPayload(4 * MiB);
    const source = await sourceTarget(payload);
    const c = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, tcpTo: `127.0.0.1:${source.port}` });
    try {
      const s = await dial(c.rawPort);
      const data = await readAll(s);
      assert.equal(data.length, payload.length);
      assert.equal(sha256(data), sha256(payload));
    } finally {
      await c.close();
      await source.close();
    }
  });

  it('uploads 4 MiB to a local service', async () => {
    const payload = randomPayload(4 * MiB);
    const sink = await sinkTarget();
    const c = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, tcpTo: `127.0.0.1:${sink.port}` });
    try {
      const s = await dial(c.rawPort);
      s.end(payload);
      const data = await sink.received;
      assert.equal(data.length, payload.length);
      assert.equal(sha256(data), sha256(payload));
    } finally {
      await c.close();
      await sink.close();
    }
  });

  it('closes the port and its connections when the tunnel ends (with a reset: the streams are cut short)', async () => {
    const c = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, tcpTo: `127.0.0.1:${echo.port}` });
    const port = c.rawPort;
    const s = await dial(port);
    s.write('ping');
    await readBytes(s, 4);
    const closedSocket = new Promise((resolve) => s.once('close', resolve));
    const reset = new Promise<string | undefined>((resolve) => s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code)));
    await c.close();
    await closedSocket;
    assert.equal(await reset, 'ECONNRESET', 'the client never ended this connection: no FIN');
    const pool = app.app.get<PortPool>(PORT_POOL);
    await waitFor(async () => !(await pool.claimed()).includes(port), 5000, 'port released');
    assert.equal(await portIsFree(port), true);
  });
});

describe('raw TCP wire format and flow control (raw protocol client)', () => {
  let app: TestApp;

  before(async () => {
    app = await startApp(await tunnelEnv({ MAX_TUNNEL_TCP_CONNS_PER_TUNNEL: '2', MAX_TUNNEL_TCP_CONNS_GLOBAL: '3' }, 4));
  });
  after(async () => {
    await app.close();
  });

  it('tcp_open, length-prefixed payload frames both ways, tcp_close either way', async () => {
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    try {
      const port = ready.rawPort as number;
      assert.ok(port > 0);
      const s = await dial(port);
      const openMsg = await tunnel.next('tcp_open');
      const open = JSON.parse(openMsg.data.toString()) as { type: string; connId: string };
      assert.deepEqual(Object.keys(open), ['type', 'connId']);
      assert.match(open.connId, /^[0-9a-f]{12}$/);
      assert.equal(openMsg.data.toString(), `{"type":"tcp_open","connId":"${open.connId}"}`);

      s.write('hello');
      await waitFor(() => tunnel.bytesFor(open.connId) >= 5, 5000, 'payload');
      const frame = tunnel.received.find((m) => m.isBinary && !isControl(m))!;
      assert.deepEqual([...frame.data.subarray(0, 4)], [0, 0, 0, 12]);
      assert.equal(frame.data.subarray(4, 16).toString(), open.connId);
      assert.equal(frame.data.subarray(16).toString(), 'hello');

      const got = readBytes(s, 5);
      tunnel.send(dataFrame(open.connId, Buffer.from('world')));
      assert.equal((await got).toString(), 'world');

      // TCP side closes → tcp_close.
      s.end();
      const close = await tunnel.nextJson('tcp_close');
      assert.deepEqual(close, { type: 'tcp_close', connId: open.connId });

      // Client side closes → the TCP connection ends after pending payload.
      const s2 = await dial(port);
      const open2 = await tunnel.nextJson<{ connId: string }>('tcp_open');
      const all = readAll(s2);
      tunnel.send(dataFrame(open2.connId, Buffer.from('bye')));
      tunnel.sendJson({ type: 'tcp_close', connId: open2.connId });
      assert.equal((await all).toString(), 'bye');
      s2.destroy();
    } finally {
      await tunnel.close();
    }
  });

  it('closes connections beyond MAX_TUNNEL_TCP_CONNS_PER_TUNNEL and MAX_TUNNEL_TCP_CONNS_GLOBAL at once', async () => {
    const a = await RawTunnel.open(app.wsUrl);
    const b = await RawTunnel.open(app.wsUrl);
    const service = app.app.get(TunnelService);
    try {
      const keep = [await dial(a.ready.rawPort as number), await dial(a.ready.rawPort as number)];
      await waitFor(() => service.tcpConnections === 2, 5000, 'two connections');
      const excess = await dial(a.ready.rawPort as number);
      await within(once(excess, 'close'), 2000, 'the connection over the per-tunnel cap closed');
      const third = await dial(b.ready.rawPort as number);
      await waitFor(() => service.tcpConnections === 3, 5000, 'three connections');
      const overGlobal = await dial(b.ready.rawPort as number);
      await within(once(overGlobal, 'close'), 2000, 'the connection over the global cap closed');
      assert.equal(service.tcpConnections, 3);
      for (const s of [...keep, third]) s.destroy();
      await waitFor(() => service.tcpConnections === 0, 5000, 'connections released');
    } finally {
      await a.tunnel.close();
      await b.tunnel.close();
    }
  });

  it('counts in wsproxy_tunnel_tcp_connections_total only the connections it carries, as tunnel_ended does, not those closed over a cap', async () => {
    const tcpCount = async (): Promise<number> => {
      const text = await (await fetch(`${app.baseUrl}/metrics`)).text();
      return Number(/^wsproxy_tunnel_tcp_connections_total (\d+)$/m.exec(text)![1]);
    };
    const before = await tcpCount();
    const a = await RawTunnel.open(app.wsUrl);
    const service = app.app.get(TunnelService);
    try {
      const keep = [await dial(a.ready.rawPort as number), await dial(a.ready.rawPort as number)];
      await waitFor(() => service.tcpConnections === 2, 5000, 'two connections');
      const excess = await dial(a.ready.rawPort as number);
      await within(once(excess, 'close'), 2000, 'the connection over the per-tunnel cap closed');
      assert.equal((await tcpCount()) - before, 2, 'the connection closed over the cap is not counted');
      for (const s of keep) s.destroy();
      await waitFor(() => service.tcpConnections === 0, 5000, 'connections released');
    } finally {
      await a.tunnel.close();
    }
  });

  it('pauses the TCP socket while the tunnel WebSocket is backed up, then delivers everything', async () => {
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    const service = app.app.get(TunnelService);
    try {
      const s = await dial(ready.rawPort as number);
      const open = await tunnel.nextJson<{ connId: string }>('tcp_open');
      // The browser stops reading.
      (tunnel.ws as unknown as { _socket: Socket })._socket.pause();
      const payload = randomPayload(48 * MiB);
      let written = false;
      s.write(payload, () => (written = true));
      await new Promise((r) => setTimeout(r, 1500));
      const session = service.find((ready.tunnelUrl as string).split('//')[1].split('.')[0])!;
      const buffered = session.wire.bufferedAmount;
      assert.ok(buffered <= TUNNEL_WS_HIGH_WATER + 128 * 1024, `ws buffer bounded, was ${buffered}`);
      assert.equal(written, false, 'the TCP sender is held back');
      (tunnel.ws as unknown as { _socket: Socket })._socket.resume();
      await waitFor(() => tunnel.bytesFor(open.connId) >= payload.length, 60_000, 'all payload');
      assert.equal(sha256(tunnel.dataFor(open.connId)), sha256(payload));
      s.destroy();
    } finally {
      await tunnel.close();
    }
  });

  it('applies backpressure towards a TCP peer that does not read without stalling the tunnel for good', async () => {
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    try {
      const { socket: s, open, wire } = await peerThatDoesNotRead(app, tunnel, ready.rawPort as number);
      const chunk = randomPayload(256 * 1024);
      for (let i = 0; i < 64; i++) tunnel.send(dataFrame(open.connId, chunk));
      await waitFor(() => wire.ws.isPaused, 5000, 'the proxy stops reading the tunnel while the peer does not read');
      s.resume();
      const got = await readBytes(s, 64 * chunk.length);
      assert.equal(got.length, 64 * chunk.length);
      await waitFor(() => !wire.ws.isPaused, 5000, 'reading the tunnel again');
      s.destroy();
    } finally {
      await tunnel.close();
    }
  });
});

describe('a TCP peer that never reads (v1 stall guard)', () => {
  it('is reset after one ping interval so the tunnel goes on', async () => {
    // Pongs queue behind the client's backlog: keep the interval well above the time to drain 16 MiB.
    const app = await startApp(await tunnelEnv({ PING_INTERVAL_MS: '2000' }, 2));
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    try {
      const { socket: stuck, open } = await peerThatDoesNotRead(app, tunnel, ready.rawPort as number);
      const chunk = randomPayload(1024 * 1024);
      for (let i = 0; i < 16; i++) tunnel.send(dataFrame(open.connId, chunk));
      // The proxy gives up on it: tcp_close goes out and the slot is free.
      const close = await tunnel.nextJson('tcp_close', 10_000);
      assert.equal(close.connId, open.connId);
      await waitFor(() => app.app.get(TunnelService).tcpConnections === 0, 5000, 'connection released');
      stuck.destroy();
      // Another connection on the same tunnel still works.
      const s = await dial(ready.rawPort as number);
      const open2 = await tunnel.nextJson<{ connId: string }>('tcp_open');
      const got = readBytes(s, 4);
      tunnel.send(dataFrame(open2.connId, Buffer.from('live')));
      assert.equal((await got).toString(), 'live');
      s.destroy();
      assert.equal(tunnel.ws.readyState, tunnel.ws.OPEN);
    } finally {
      await tunnel.close();
      await app.close();
    }
  });
});

describe('a server close of a v1 tunnel paused for a TCP peer that does not read', () => {
  it("reads on to the client's close answer: the tunnel closes at once, not after the stall allowance", async () => {
    // A stall allowance of 30 s (one ping interval, at most 30 s): without reading on, the close would wait for it.
    const app = await startApp(await tunnelEnv({ PING_INTERVAL_MS: '30000' }, 2));
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    try {
      const { socket: stuck, open, session, wire } = await peerThatDoesNotRead(app, tunnel, ready.rawPort as number);
      const chunk = randomPayload(1024 * 1024);
      for (let i = 0; i < 16; i++) tunnel.send(dataFrame(open.connId, chunk));
      await waitFor(() => wire.ws.isPaused, 5000, 'the proxy to stop reading the tunnel');
      const end = closed(tunnel.ws);
      session.close(4408, 'maximum connection age reached');
      // The client's answer waits behind the megabytes it sent for the stuck peer: read on and dropped.
      const { code } = await within(end, 10_000, 'the tunnel to close');
      assert.equal(code, 4408);
      await waitFor(() => app.app.get(TunnelService).tcpConnections === 0, 5000, 'connection released');
      stuck.destroy();
    } finally {
      await tunnel.close();
      await app.close();
    }
  });
});

/** How `s` ended: 'FIN' (a clean end: the whole stream) or the error code (ECONNRESET: cut short), with what it read. */
function ending(s: Socket): Promise<{ how: string; bytes: Buffer }> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve) => {
    s.once('end', () => resolve({ how: 'FIN', bytes: Buffer.concat(chunks) }));
    s.once('error', (err: NodeJS.ErrnoException) => resolve({ how: err.code ?? 'error', bytes: Buffer.concat(chunks) }));
  });
}

describe('how a tunnel ends a TCP connection on its port: a FIN for a whole stream, a reset for a truncated one', () => {
  let app: TestApp;

  before(async () => {
    app = await startApp(await tunnelEnv({}, 2));
  });
  after(async () => {
    await app.close();
  });

  it('a tunnel client that vanishes (1006) with the connection open: the peer gets a reset, not a FIN', async () => {
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    try {
      const s = await dial(ready.rawPort as number);
      const open = await tunnel.nextJson<{ connId: string }>('tcp_open');
      const end = ending(s);
      tunnel.send(dataFrame(open.connId, Buffer.from('the first half')));
      await waitFor(() => s.bytesRead === 14, 5000, 'the bytes at the peer');
      tunnel.ws.terminate();
      const { how, bytes } = await within(end, 5000, 'the peer ended');
      assert.equal(how, 'ECONNRESET', 'a FIN would pass the first half for the whole stream');
      assert.equal(bytes.toString(), 'the first half');
    } finally {
      await tunnel.close();
    }
  });

  it('a tunnel that closes right after the client closed the connection: the peer still gets every byte, then a FIN', async () => {
    const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
    try {
      const s = await dial(ready.rawPort as number);
      s.pause(); // what the client sends waits in the proxy when the tunnel closes
      const open = await tunnel.nextJson<{ connId: string }>('tcp_open');
      const payload = randomPayload(2 * MiB);
      tunnel.send(dataFrame(open.connId, payload));
      tunnel.sendJson({ type: 'tcp_close', connId: open.connId });
      const end = ending(s);
      await tunnel.close();
      await waitFor(() => app.app.get(TunnelService).sessions().size === 0, 5000, 'the tunnel gone');
      s.resume();
      const { how, bytes } = await within(end, 10_000, 'the peer ended');
      assert.equal(bytes.length, payload.length, 'every byte the client sent before its tcp_close');
      assert.equal(sha256(bytes), sha256(payload));
      assert.equal(how, 'FIN');
    } finally {
      await tunnel.close();
    }
  });
});

describe('raw port pool', () => {
  it('gives out the two ports of a range of 2, then rawPort 0; a closed tunnel frees its port at once', async () => {
    const env = await tunnelEnv({}, 2);
    const min = Number(env.TUNNEL_PORT_MIN);
    const app = await startApp(env);
    try {
      const t1 = await RawTunnel.open(app.wsUrl);
      const t2 = await RawTunnel.open(app.wsUrl);
      const t3 = await RawTunnel.open(app.wsUrl);
      assert.deepEqual([t1.ready.rawPort, t2.ready.rawPort, t3.ready.rawPort], [min, min + 1, 0]);
      await t1.tunnel.close();
      const pool = app.app.get<PortPool>(PORT_POOL);
      await waitFor(async () => (await pool.claimed()).length === 1, 5000, 'port released');
      const t4 = await RawTunnel.open(app.wsUrl);
      assert.equal(t4.ready.rawPort, min);
      for (const t of [t2, t3, t4]) await t.tunnel.close();
      await waitFor(async () => (await pool.claimed()).length === 0, 5000, 'all released');
    } finally {
      await app.close();
    }
  });

  it('skips a port another program holds', async () => {
    const env = await tunnelEnv({}, 3);
    const min = Number(env.TUNNEL_PORT_MIN);
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen({ port: min, host: '127.0.0.1' }, resolve));
    const app = await startApp(env);
    try {
      const t = await RawTunnel.open(app.wsUrl);
      assert.equal(t.ready.rawPort, min + 1);
      await t.tunnel.close();
    } finally {
      await app.close();
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('rawPort 0 when TCP tunnels are off', async () => {
    const app = await startApp(await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false' }, 2));
    try {
      const t = await RawTunnel.open(app.wsUrl);
      assert.equal(t.ready.rawPort, 0);
      await t.tunnel.close();
    } finally {
      await app.close();
    }
  });
});

describe('TCP peers that never read, one after another (v1 stall budget)', () => {
  it('share one stall allowance: the tunnel lives on and a reading peer keeps getting data', async () => {
    const source = await floodTarget();
    const app = await startApp(await tunnelEnv({ PING_INTERVAL_MS: '2000' }, 2));
    const client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, tcpTo: `127.0.0.1:${source.port}` });
    let closedEarly: unknown = null;
    void client.closed.then((c) => (closedEarly = c));
    const sockets: Socket[] = [];
    try {
      let healthy = 0;
      const good = await dial(client.rawPort);
      sockets.push(good);
      good.on('data', (c: Buffer) => (healthy += c.length));
      for (let i = 0; i < 4; i++) {
        const stuck = await dial(client.rawPort);
        stuck.pause();
        sockets.push(stuck);
      }
      // Before the budget, four stuck peers held the tunnel one interval (2 s) each, back to back,
      // and the keepalive, whose pongs sat behind the paused data, closed it within three.
      await new Promise((r) => setTimeout(r, 4000));
      const before = healthy;
      await new Promise((r) => setTimeout(r, 3000));
      assert.equal(closedEarly, null, 'the tunnel is still open');
      assert.ok(healthy - before > 4 * MiB, `the reading peer got ${healthy - before} bytes in 3 s`);
    } finally {
      for (const s of sockets) s.destroy();
      await client.close();
      await app.close();
      await source.close();
    }
  });
});

describe('MAX_TUNNEL_TCP_CONNS_PER_IP', () => {
  /** Connects from `localAddress` (another loopback address is another source IP). */
  function dialFrom(port: number, localAddress: string): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, localAddress }, () => resolve(s));
      s.once('error', reject);
    });
  }

  it('closes a source IP’s connections beyond the cap over every tunnel port at once; other IPs go on', async () => {
    const app = await startApp(await tunnelEnv({ MAX_TUNNEL_TCP_CONNS_PER_IP: '2' }, 4));
    const a = await RawTunnel.open(app.wsUrl);
    const b = await RawTunnel.open(app.wsUrl);
    const service = app.app.get(TunnelService);
    const sockets: Socket[] = [];
    try {
      sockets.push(await dialFrom(a.ready.rawPort as number, '127.0.0.1'), await dialFrom(b.ready.rawPort as number, '127.0.0.1'));
      await waitFor(() => service.tcpConnections === 2, 5000, 'two connections');
      const excess = await dialFrom(b.ready.rawPort as number, '127.0.0.1');
      await within(once(excess, 'close'), 5000, 'the connection over the cap closed');
      assert.equal(service.tcpConnections, 2, 'the third from 127.0.0.1 never reached a tunnel');
      sockets.push(await dialFrom(a.ready.rawPort as number, '127.0.0.2'));
      await waitFor(() => service.tcpConnections === 3, 5000, 'another source IP is let in');
      sockets[0]!.destroy();
      await waitFor(() => service.tcpConnections === 2, 5000, 'one released');
      sockets.push(await dialFrom(a.ready.rawPort as number, '127.0.0.1'));
      await waitFor(() => service.tcpConnections === 3, 5000, 'its slot is back');
    } finally {
      for (const s of sockets) s.destroy();
      await a.tunnel.close();
      await b.tunnel.close();
      await app.close();
    }
  });
});

describe('a local TCP service that never reads (reference v1 client)', () => {
  it('loses its connection after localStallMs; the tunnel and its other connections go on', async () => {
    const held: Socket[] = [];
    let accepted = 0;
    // The first connection's service never reads; later ones echo.
    const local = createServer((s) => {
      s.on('error', () => undefined);
      if (accepted++ === 0) {
        s.pause();
        held.push(s);
      } else s.pipe(s);
    });
    await new Promise<void>((r) => local.listen(0, '127.0.0.1', r));
    const app = await startApp(await tunnelEnv({ PING_INTERVAL_MS: '1000' }, 2));
    const client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, tcpTo: `127.0.0.1:${(local.address() as { port: number }).port}`, localStallMs: 500 });
    let closedEarly: unknown = null;
    void client.closed.then((c) => (closedEarly = c));
    const sockets: Socket[] = [];
    try {
      const stuck = await dial(client.rawPort);
      sockets.push(stuck);
      stuck.on('error', () => undefined);
      const big = randomPayload(1024 * 1024);
      for (let i = 0; i < 20; i++) stuck.write(big);
      await within(once(stuck, 'close'), 10_000, 'the stuck connection dropped');
      // Past two of the proxy's ping intervals: the tunnel was never held long enough to be dropped.
      await new Promise((r) => setTimeout(r, 2500));
      assert.equal(closedEarly, null, 'the tunnel is still open');
      const s = await dial(client.rawPort);
      sockets.push(s);
      const got = readBytes(s, 5);
      s.write('alive');
      assert.equal((await within(got, 5000, 'the echo')).toString(), 'alive');
    } finally {
      for (const s of [...sockets, ...held]) s.destroy();
      await client.close();
      await app.close();
      await new Promise<void>((r) => local.close(() => r()));
    }
  });
});

describe('a TCP peer that reads slowly (v1 stall budget)', () => {
  it('is never reset while it keeps reading, however long the tunnel waits on it', async () => {
    const source = await floodTarget();
    // One stall allowance is one ping interval: 1 s here, far shorter than the test.
    const app = await startApp(await tunnelEnv({ PING_INTERVAL_MS: '1000' }, 2));
    const client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, tcpTo: `127.0.0.1:${source.port}` });
    let visitor: Socket | undefined;
    try {
      visitor = await dial(client.rawPort);
      let received = 0;
      let closed = false;
      visitor.on('data', (c: Buffer) => (received += c.length));
      visitor.on('close', () => (closed = true));
      // About 4 MiB/s: the tunnel waits on this reader most of the time, but each wait ends in a drain.
      const slow = setInterval(() => {
        visitor!.pause();
        setTimeout(() => visitor!.resume(), 40);
      }, 50);
      await new Promise((r) => setTimeout(r, 5000));
      clearInterval(slow);
      assert.equal(closed, false, `the slow reader was cut off after ${received} bytes`);
      assert.ok(received > 4 * MiB, `it got ${received} bytes in 5 s`);
    } finally {
      visitor?.destroy();
      await client.close();
      await app.close();
      await source.close();
    }
  });
});

describe('raw tunnel ports that cannot be bound', () => {
  it('registers the tunnel without a TCP port (rawPort 0) and says why in a warning', async () => {
    // 192.0.2.1 (TEST-NET-1) is no local address: the bind fails with EADDRNOTAVAIL and no packet is sent.
    const svc = await startServiceProcess({ ...(await tunnelEnv({ TUNNEL_BIND_HOST: '192.0.2.1', LOG_LEVEL: 'info' }, 2)), SHUTDOWN_TIMEOUT_MS: '0' });
    try {
      const { tunnel, ready } = await RawTunnel.open(`ws://127.0.0.1:${svc.port}`);
      assert.equal(ready.rawPort, 0);
      const warning = () =>
        svc.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.event === 'tunnel_port_bind_failed');
      await waitFor(() => warning() !== undefined, 5000, 'the bind warning');
      const w = warning()!;
      assert.equal(w.host, '192.0.2.1');
      assert.equal(w.rawPort, 0);
      assert.deepEqual(Object.keys(w.refused as object), ['EADDRNOTAVAIL']);
      tunnel.ws.close(1000);
    } finally {
      svc.child.kill('SIGTERM');
      await svc.exited;
    }
  });
});
