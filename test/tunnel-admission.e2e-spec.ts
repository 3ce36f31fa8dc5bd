import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LimitsService } from '../src/limits/limits.service.js';
import { DrainService } from '../src/lifecycle/drain.service.js';
import { WsproxyEvents } from '../src/common/events.js';
import { TunnelClient, TunnelRefusedError } from '../src/tunnel/client/tunnel-client.js';
import { PORT_POOL, type PortPool } from '../src/tunnel/state/port-pool.js';
import { TUNNEL_REGISTRY, type TunnelRegistry } from '../src/tunnel/state/tunnel-registry.js';
import { TunnelService } from '../src/tunnel/tunnel.service.js';
import { startApp, type TestApp } from './support/app.js';
import { JwksServer, makeKey, mintToken, type TestKey } from './support/jwks.js';
import { closed, expectCloseRefusal, expectRefusal } from './support/ws-client.js';
import { RawTunnel, TUNNEL_DOMAIN, httpTo, startHttpService, tunnelEnv, waitFor } from './support/tunnel.js';

async function slotsInUse(app: TestApp): Promise<number> {
  const snap = await app.app.get(LimitsService).snapshot();
  return Object.values(snap.perIp).reduce((a, b) => a + b, 0);
}

async function nothingHeld(app: TestApp): Promise<boolean> {
  const registry = app.app.get<TunnelRegistry>(TUNNEL_REGISTRY);
  const pool = app.app.get<PortPool>(PORT_POOL);
  return (await slotsInUse(app)) === 0 && (await registry.size()) === 0 && (await pool.claimed()).length === 0;
}

describe('tunnel registration admission', () => {
  let app: TestApp;

  before(async () => {
    app = await startApp(await tunnelEnv({ MAX_TUNNELS_PER_USER: '2', MAX_CONNS_PER_IP: '3', ALLOWED_ORIGINS: 'https://app.example.com' }, 4));
  });
  after(async () => {
    await app.close();
  });

  it('with authentication off MAX_TUNNELS_PER_USER does not bind (every client is anonymous), MAX_CONNS_PER_IP does; everything comes back', async () => {
    const a = await RawTunnel.open(app.wsUrl);
    const b = await RawTunnel.open(app.wsUrl);
    const c = await RawTunnel.open(app.wsUrl);
    assert.equal(await app.app.get<TunnelRegistry>(TUNNEL_REGISTRY).countForUser('anonymous'), 3, 'three tunnels of one user, over MAX_TUNNELS_PER_USER=2');
    const refused = await expectRefusal(`${app.wsUrl}/tunnel`);
    assert.deepEqual(refused, { status: 429, body: 'too many connections from this IP' });
    assert.equal(await slotsInUse(app), 3, 'the refused registration holds no slot');
    await a.tunnel.close();
    await waitFor(async () => (await app.app.get<TunnelRegistry>(TUNNEL_REGISTRY).countForUser('anonymous')) === 2, 5000, 'two tunnels left');
    const d = await RawTunnel.open(app.wsUrl);
    for (const t of [b, c, d]) await t.tunnel.close();
    await waitFor(() => nothingHeld(app), 5000, 'everything released');
  });

  it('shares per-IP limits with relays (MAX_CONNS_PER_IP)', async () => {
    const app2 = await startApp(await tunnelEnv({ MAX_CONNS_PER_IP: '1' }, 2));
    try {
      const a = await RawTunnel.open(app2.wsUrl);
      const refused = await expectRefusal(`${app2.wsUrl}/tunnel`);
      assert.equal(refused.status, 429);
      await a.tunnel.close();
      await waitFor(() => nothingHeld(app2), 5000, 'released');
    } finally {
      await app2.close();
    }
  });

  it('checks Origin like /relay', async () => {
    const refused = await expectRefusal(`${app.wsUrl}/tunnel`, { headers: { origin: 'https://evil.example.com' } });
    assert.deepEqual(refused, { status: 403, body: 'origin not allowed' });
    const ok = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, headers: { origin: 'https://app.example.com' } });
    await ok.close();
    await waitFor(() => nothingHeld(app), 5000, 'released');
  });

  it('gives everything back when clients vanish without a close frame', async () => {
    for (let i = 0; i < 10; i++) {
      const t = await RawTunnel.open(app.wsUrl);
      t.tunnel.ws.terminate();
    }
    await waitFor(() => nothingHeld(app), 5000, 'released');
  });
});

describe('tunnel registration with authentication', () => {
  let jwks: JwksServer;
  let key: TestKey;
  let app: TestApp;

  before(async () => {
    key = await makeKey();
    jwks = await JwksServer.start([key]);
    app = await startApp(await tunnelEnv({ CLERK_JWKS_URL: jwks.url, MAX_TUNNELS_PER_USER: '1' }, 4));
  });
  after(async () => {
    await app.close();
    await jwks.stop();
  });

  it('401 without a token; counts tunnels per user (sub)', async () => {
    assert.equal((await expectRefusal(`${app.wsUrl}/tunnel`)).status, 401);
    const alice = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, token: await mintToken(key, { sub: 'alice' }) });
    const second = `${app.wsUrl}/tunnel?token=${await mintToken(key, { sub: 'alice' })}`;
    assert.deepEqual(await expectRefusal(second), { status: 429, body: 'too many tunnels for this user' });
    assert.deepEqual(await expectCloseRefusal(`${second}&errors=close`), { code: 4429, reason: 'too many tunnels for this user' });
    await assert.rejects(
      TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, token: await mintToken(key, { sub: 'alice' }) }),
      (err: unknown) => err instanceof TunnelRefusedError && err.status === 429,
    );
    const bob = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, token: await mintToken(key, { sub: 'bob' }) });
    const users = [...app.app.get(TunnelService).sessions().values()].map((s) => s.info.user).sort();
    assert.deepEqual(users, ['alice', 'bob']);
    assert.equal(await slotsInUse(app), 2, 'the refused registration holds no slot');
    await alice.close();
    await waitFor(async () => (await app.app.get<TunnelRegistry>(TUNNEL_REGISTRY).countForUser('alice')) === 0, 5000, 'alice’s tunnel released');
    const again = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, token: await mintToken(key, { sub: 'alice' }) });
    await again.close();
    await bob.close();
    await waitFor(() => nothingHeld(app), 5000, 'released');
  });
});

describe('tunnel lifetime', () => {
  it('closes with 4408 after MAX_CONNECTION_S and answers waiting requests 502', async () => {
    const app = await startApp(await tunnelEnv({ MAX_CONNECTION_S: '1' }, 2));
    try {
      const { tunnel, ready } = await RawTunnel.open(app.wsUrl);
      const host = `${(ready.tunnelUrl as string).split('//')[1]}`;
      const waiting = httpTo(app.port, host);
      await tunnel.next('http_request');
      const { code, reason } = await closed(tunnel.ws);
      assert.equal(code, 4408);
      assert.equal(reason, 'maximum connection age reached');
      assert.equal((await waiting).status, 502);
      await waitFor(() => nothingHeld(app), 5000, 'released');
    } finally {
      await app.close();
    }
  });

  it('refuses a new tunnel while draining: 503 server is draining (4503 with errors=close)', async () => {
    const app = await startApp(await tunnelEnv({}, 2));
    try {
      app.app.get(DrainService).startDraining();
      assert.deepEqual(await expectRefusal(`${app.wsUrl}/tunnel`), { status: 503, body: 'server is draining' });
      assert.deepEqual(await expectCloseRefusal(`${app.wsUrl}/tunnel?errors=close`), { code: 4503, reason: 'server is draining' });
      assert.ok(await nothingHeld(app), 'nothing taken');
    } finally {
      await app.close();
    }
  });

  it('is tracked for drain and closed with 1001 on shutdown', async () => {
    const app = await startApp(await tunnelEnv({}, 2));
    const drain = app.app.get(DrainService);
    const before = drain.liveCount;
    const { tunnel } = await RawTunnel.open(app.wsUrl);
    assert.equal(drain.liveCount, before + 1);
    const end = closed(tunnel.ws);
    await app.close();
    assert.equal((await end).code, 1001);
  });

  it('emits tunnel.opened / tunnel.closed / tunnel.http events with counts', async () => {
    const app = await startApp(await tunnelEnv({}, 2));
    const svc = await startHttpService((_req, _body, res) => res.end('ok'));
    try {
      const events = app.app.get(WsproxyEvents);
      const seen: string[] = [];
      let closedEvent: { httpRequests: number; tcpConnections: number; rawPort: number } | null = null;
      events.on('tunnel.opened', (e) => seen.push(`opened ${e.rawPort > 0}`));
      events.on('tunnel.http', (e) => seen.push(`http ${e.status}`));
      events.on('tunnel.closed', (e) => {
        closedEvent = e;
        seen.push('closed');
      });
      const client = await TunnelClient.connect({ proxy: `${app.wsUrl}/tunnel`, to: svc.target });
      await httpTo(app.port, `${client.subdomain}.${TUNNEL_DOMAIN}`);
      await httpTo(app.port, `${client.subdomain}.${TUNNEL_DOMAIN}`);
      await client.close();
      await waitFor(() => closedEvent !== null, 5000, 'closed event');
      assert.deepEqual(seen, ['opened true', 'http 200', 'http 200', 'closed']);
      assert.equal(closedEvent!.httpRequests, 2);
      assert.equal(closedEvent!.tcpConnections, 0);
    } finally {
      await app.close();
      await svc.close();
    }
  });
});
