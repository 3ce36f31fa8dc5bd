import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { DrainService } from '../src/lifecycle/drain.service.js';
import { LimitsService } from '../src/limits/limits.service.js';
import { startApp, type TestApp } from './support/app.js';
import { JwksServer, makeKey, mintToken, type TestKey } from './support/jwks.js';
import { UPGRADE_HEADERS } from './support/raw-http.js';
import { RawResumeClient } from './support/resume-client.js';
import { echoTarget, startTarget, type TestTarget } from './support/targets.js';
import { tunnelEnv } from './support/tunnel.js';
import { closed, expectCloseRefusal, expectRefusal, openWs } from './support/ws-client.js';
import { waitFor } from './support/wait.js';

/** `MAX_CONNECTIONS`: the replica's cap on the WebSocket connections it holds, admissions in progress included. */

const slotsInUse = (app: TestApp): number => app.app.get(LimitsService).slotsInUse;

/** An upgrade's HTTP answer: status, headers and body, read by hand (the ws client hides `Retry-After`). */
function upgradeAnswer(port: number, path: string): Promise<{ status: number; retryAfter: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const headers = { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' };
    const req = request({ host: '127.0.0.1', port, path, headers });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined, body: body.trim() }));
    });
    req.on('upgrade', (_res, socket) => {
      socket.destroy();
      reject(new Error(`${path} was admitted`));
    });
    req.on('error', reject);
    req.end();
  });
}

async function refusalsAtCapacity(app: TestApp): Promise<number> {
  const res = await fetch(`${app.baseUrl}/metrics`);
  const line = (await res.text()).split('\n').find((l) => l.startsWith('wsproxy_admission_refusals_total{reason="capacity"}'));
  return Number(line?.split(' ')[1] ?? NaN);
}

async function closeWs(ws: WebSocket): Promise<void> {
  ws.close(1000);
  await closed(ws);
}

describe('MAX_CONNECTIONS: relays', () => {
  let app: TestApp;
  let echo: TestTarget;
  let relay: string;

  before(async () => {
    echo = await echoTarget();
    app = await startApp({ MAX_CONNECTIONS: '2', MAX_CONNS_PER_IP: '100' });
    relay = `/relay?host=127.0.0.1&port=${echo.port}`;
  });
  after(async () => {
    await app.close();
    await echo.close();
  });

  it('refuses a connection beyond it with 503, Retry-After and the reason, counted as `capacity`; admits again once one ends', async () => {
    const before = await refusalsAtCapacity(app);
    const a = await openWs(app.wsUrl + relay);
    const b = await openWs(app.wsUrl + relay);
    assert.deepEqual(await upgradeAnswer(app.port, relay), { status: 503, retryAfter: '5', body: 'proxy at capacity' });
    assert.deepEqual(await expectCloseRefusal(`${app.wsUrl}${relay}&errors=close`), { code: 4503, reason: 'proxy at capacity' });
    assert.equal(await refusalsAtCapacity(app), before + 2);
    await closeWs(a);
    await waitFor(() => slotsInUse(app) === 1, 5000, 'the slot of the relay the client closed');
    const c = await openWs(app.wsUrl + relay);
    await closeWs(b);
    await closeWs(c);
    await waitFor(() => slotsInUse(app) === 0, 5000, 'every slot back');
  });

  it('gives the slot back when the target closes the relay', async () => {
    const closing = await startTarget((s) => s.end());
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${closing.port}`);
      await closed(ws);
      await waitFor(() => slotsInUse(app) === 0, 5000, 'the slot of the relay the target closed');
    } finally {
      await closing.close();
    }
  });

  it('gives the slot back when the dial is refused', async () => {
    const gone = await echoTarget();
    await gone.close();
    for (let i = 0; i < 3; i++) {
      assert.equal((await expectRefusal(`${app.wsUrl}/relay?host=127.0.0.1&port=${gone.port}`)).status, 502);
    }
    assert.equal(slotsInUse(app), 0);
  });

  it('admits exactly MAX_CONNECTIONS of a burst of concurrent upgrades', async () => {
    const results = await Promise.allSettled(Array.from({ length: 7 }, () => openWs(app.wsUrl + relay)));
    const opened = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as { status?: number; body?: string }] : []));
    assert.equal(opened.length, 2);
    assert.deepEqual(
      refused.map((e) => [e.status, e.body]),
      Array.from({ length: 5 }, () => [503, 'proxy at capacity']),
    );
    await Promise.all(opened.map(closeWs));
    await waitFor(() => slotsInUse(app) === 0, 5000, 'every slot back');
  });
});

describe('MAX_CONNECTIONS: resumable relays', () => {
  let app: TestApp;
  let echo: TestTarget;

  before(async () => {
    echo = await echoTarget();
    app = await startApp({ MAX_CONNECTIONS: '1', MAX_CONNS_PER_IP: '100', RESUME_WINDOW_S: '30' });
  });
  after(async () => {
    await app.close();
    await echo.close();
  });

  it('a session waiting for its client keeps its slot, and its reattach rides on it', async () => {
    const { client, session } = await RawResumeClient.open(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}&resume=1`);
    client.ws.terminate();
    await closed(client.ws);
    assert.equal(slotsInUse(app), 1);
    assert.equal((await expectRefusal(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`)).status, 503);
    // A made-up id holds a slot while it is authenticated: none is free.
    assert.equal((await expectRefusal(`${app.wsUrl}/relay?resume=${'0'.repeat(32)}&received=0`)).status, 503);
    const back = await RawResumeClient.connect(`${app.wsUrl}/relay?resume=${session.id}&received=0`);
    await closeWs(back.ws);
    await waitFor(() => slotsInUse(app) === 0, 5000, 'the session slot back once the session ended');
  });
});

describe('MAX_CONNECTIONS: tunnels', () => {
  let app: TestApp;
  let echo: TestTarget;

  before(async () => {
    echo = await echoTarget();
    app = await startApp(await tunnelEnv({ MAX_CONNECTIONS: '1' }));
  });
  after(async () => {
    await app.close();
    await echo.close();
  });

  it('count: a tunnel holds a slot until it ends', async () => {
    const tunnel = await openWs(`${app.wsUrl}/tunnel`);
    assert.deepEqual(await expectRefusal(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`), { status: 503, body: 'proxy at capacity' });
    assert.deepEqual(await expectRefusal(`${app.wsUrl}/tunnel`), { status: 503, body: 'proxy at capacity' });
    await closeWs(tunnel);
    await waitFor(() => slotsInUse(app) === 0, 5000, 'the tunnel slot back');
    await closeWs(await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`));
  });
});

describe('MAX_CONNECTIONS: admissions in progress', () => {
  let jwks: JwksServer;
  let key: TestKey;
  let echo: TestTarget;
  let app: TestApp;
  let relay: string;

  before(async () => {
    key = await makeKey('cap-key');
    jwks = await JwksServer.start([key]);
    echo = await echoTarget();
    app = await startApp({
      CLERK_JWKS_URL: jwks.url,
      JWKS_FETCH_TIMEOUT_MS: '30000',
      JWKS_REFETCH_COOLDOWN_S: '0',
      MAX_CONNECTIONS: '1',
      MAX_CONNS_PER_IP: '100',
    });
    relay = `${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`;
  });
  after(async () => {
    await app.close();
    await echo.close();
    await jwks.stop();
  });

  it('gives the slot back when authentication refuses', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await expectRefusal(`${relay}&token=not.a.token`)).status, 401);
    assert.equal((await expectRefusal(relay)).status, 401);
    assert.equal(slotsInUse(app), 0);
    const ws = await openWs(`${relay}&token=${await mintToken(key, { sub: 'cap_user' })}`);
    await closeWs(ws);
    await waitFor(() => slotsInUse(app) === 0, 5000, 'the slot back');
  });

  it('counts an admission waiting for the issuer\'s keys, and gives its slot back as soon as its client leaves', async () => {
    jwks.hang();
    jwks.resetCount();
    // A key the proxy has not seen: verifying the token waits on a JWKS fetch that never answers.
    const unknown = await makeKey('cap-unknown');
    const token = await mintToken(unknown, { sub: 'cap_user' });
    for (const leave of [(s: Socket) => s.end(), (s: Socket) => s.resetAndDestroy()]) {
      const s = connect(app.port, '127.0.0.1');
      s.on('error', () => undefined);
      await once(s, 'connect');
      s.write(`GET /relay?host=127.0.0.1&port=${echo.port}&token=${token} HTTP/1.1\r\nHost: 127.0.0.1\r\n${UPGRADE_HEADERS}\r\n`);
      await waitFor(() => jwks.requests > 0 && slotsInUse(app) === 1, 5000, 'the admission waiting on the JWKS fetch');
      // The cap bounds admissions in progress: the next is refused at once, before authentication.
      assert.deepEqual(await expectRefusal(`${relay}&token=${token}`), { status: 503, body: 'proxy at capacity' });
      leave(s);
      await waitFor(() => slotsInUse(app) === 0, 3000, 'the slot of the client that left');
    }
    jwks.publish([key]);
  });
});

describe('MAX_CONNECTIONS: drain', () => {
  it('gives back the slot of an admission the drain refuses, and of a relay that ends during the drain', async () => {
    const key = await makeKey('cap-drain-key');
    const jwks = await JwksServer.start([key]);
    const echo = await echoTarget();
    const app = await startApp({
      CLERK_JWKS_URL: jwks.url,
      JWKS_FETCH_TIMEOUT_MS: '30000',
      JWKS_REFETCH_COOLDOWN_S: '0',
      MAX_CONNECTIONS: '2',
      SHUTDOWN_TIMEOUT_MS: '0',
    });
    try {
      const relay = `${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`;
      const ws = await openWs(`${relay}&token=${await mintToken(key, { sub: 'cap_drain' })}`);
      jwks.hang();
      const waiting = expectRefusal(`${relay}&token=${await mintToken(await makeKey('cap-drain-unknown'), { sub: 'cap_drain' })}`);
      await waitFor(() => slotsInUse(app) === 2, 5000, 'the admission waiting on the JWKS fetch');
      app.app.get(DrainService).startDraining();
      assert.deepEqual(await waiting, { status: 503, body: 'server is draining' });
      await waitFor(() => slotsInUse(app) === 1, 5000, 'the slot of the admission the drain refused');
      await closeWs(ws);
      await waitFor(() => slotsInUse(app) === 0, 5000, 'the slot of the relay');
    } finally {
      await app.close();
      await echo.close();
      await jwks.stop();
    }
  });
});
