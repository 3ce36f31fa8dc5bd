import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { base64url } from 'jose';
import type { WebSocket } from 'ws';
import { LimitsService } from '../src/limits/limits.service.js';
import { startApp, type TestApp } from './support/app.js';
import { JwksServer, makeKey, mintToken, unreachableJwksUrl, type TestKey } from './support/jwks.js';
import { rawExchange, UPGRADE_HEADERS } from './support/raw-http.js';
import { echoTarget, type TestTarget } from './support/targets.js';
import { closed, expectCloseRefusal, expectRefusal, openWs, receiveBytes } from './support/ws-client.js';
import { waitFor } from './support/wait.js';

/** Sends a few bytes through an open relay to the echo target and expects them back. */
async function echoes(ws: WebSocket, text = 'ping'): Promise<void> {
  const got = receiveBytes(ws, text.length);
  ws.send(Buffer.from(text));
  assert.equal((await got).toString(), text);
}

async function closeWs(ws: WebSocket): Promise<void> {
  ws.close(1000);
  await closed(ws);
}

describe('authentication end to end', () => {
  let jwks: JwksServer;
  let key: TestKey;
  let other: TestKey;
  let echo: TestTarget;
  let app: TestApp;
  let relay: string;

  const userSlots = async (user: string): Promise<number> => (await app.app.get(LimitsService).snapshot()).perUser[user] ?? 0;

  before(async () => {
    key = await makeKey('e2e-key');
    other = await makeKey('e2e-other');
    jwks = await JwksServer.start([key]);
    echo = await echoTarget();
    app = await startApp({
      CLERK_JWKS_URL: jwks.url,
      JWT_ISSUER: 'https://clerk.test',
      JWT_AUDIENCE: 'wsproxy',
      JWT_CLOCK_TOLERANCE_S: '0',
      MAX_CONNS_PER_USER: '1',
      MAX_CONNS_PER_IP: '100',
      TRUSTED_PROXIES: '127.0.0.1',
    });
    relay = `${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`;
  });
  after(async () => {
    await app?.close();
    await echo?.close();
    await jwks?.stop();
  });

  const token = (sub: string, claims: Record<string, unknown> = {}, opts = {}): Promise<string> =>
    mintToken(key, { sub, iss: 'https://clerk.test', aud: 'wsproxy', ...claims }, opts);

  describe('/relay with a valid token', () => {
    it('is admitted with the token in the query', async () => {
      const ws = await openWs(`${relay}&token=${await token('user_query')}`);
      await echoes(ws);
      await closeWs(ws);
    });

    it('is admitted with the token in Authorization: Bearer', async () => {
      const ws = await openWs(relay, { headers: { Authorization: `Bearer ${await token('user_header')}` } });
      await echoes(ws);
      await closeWs(ws);
    });

    it('is admitted with a bearer.<JWT> subprotocol and answers the non-token protocol', async () => {
      const ws = await openWs(relay, { protocols: ['wsproxy', `bearer.${await token('user_proto')}`] });
      assert.equal(ws.protocol, 'wsproxy');
      await echoes(ws);
      await closeWs(ws);
    });

    it('reads the bearer. prefix in any case, and takes an empty token= or a bare bearer. as no token: the next carrier is read', async () => {
      const upper = await openWs(relay, { protocols: ['wsproxy', `BEARER.${await token('user_proto_upper')}`] });
      assert.equal(upper.protocol, 'wsproxy');
      await echoes(upper);
      await closeWs(upper);
      const behindEmpty = await openWs(`${relay}&token=`, { headers: { Authorization: `Bearer ${await token('user_behind_empty')}` } });
      await echoes(behindEmpty);
      await closeWs(behindEmpty);
      assert.deepEqual(await expectRefusal(`${relay}&token=`), { status: 401, body: 'token missing' });
      assert.deepEqual(await expectRefusal(relay, { protocols: ['wsproxy', 'bearer.'] }), { status: 401, body: 'token missing' });
    });

    it('answers no subprotocol when only the token protocol was offered (so clients must offer another)', async () => {
      // The server never echoes the token; a client that offered only it fails the
      // handshake itself (browsers and ws both require an answered protocol).
      await assert.rejects(openWs(relay, { protocols: [`bearer.${await token('user_proto_only')}`] }), /no subprotocol/i);
    });

    it('keeps an admitted relay running after its token expires', async () => {
      const now = Math.floor(Date.now() / 1000);
      const ws = await openWs(`${relay}&token=${await token('user_short', { exp: now + 2 })}`);
      await echoes(ws, 'before');
      await new Promise((r) => setTimeout(r, (now + 3) * 1000 - Date.now()));
      await echoes(ws, 'after expiry');
      await closeWs(ws);
    });
  });

  describe('/relay refusals', () => {
    it('401 with the reason, and 4401 with errors=close', async () => {
      const now = Math.floor(Date.now() / 1000);
      const none = `${base64url.encode(JSON.stringify({ alg: 'none', kid: key.kid }))}.${base64url.encode(
        JSON.stringify({ sub: 'admin', iss: 'https://clerk.test', aud: 'wsproxy', exp: now + 60 }),
      )}.`;
      const cases: [string | null, string][] = [
        [null, 'token missing'],
        ['not-a-jwt', 'token malformed'],
        [none, 'algorithm not allowed'],
        [await token('u', { exp: now - 10 }), 'token expired'],
        [await token('u', { nbf: now + 600 }), 'token not yet valid'],
        [await token('u', { iss: 'https://evil.test' }), 'issuer mismatch'],
        [await token('u', { aud: ['other'] }), 'audience mismatch'],
        [await token('u', { sub: undefined }), 'subject missing'],
        [await mintToken(other, { sub: 'u', iss: 'https://clerk.test', aud: 'wsproxy' }, { kid: key.kid }), 'signature invalid'],
        [await mintToken(other, { sub: 'u', iss: 'https://clerk.test', aud: 'wsproxy' }), 'unknown key'],
      ];
      for (const [t, reason] of cases) {
        const url = t === null ? relay : `${relay}&token=${encodeURIComponent(t)}`;
        assert.deepEqual(await expectRefusal(url), { status: 401, body: reason }, reason);
        assert.deepEqual(await expectCloseRefusal(`${url}&errors=close`), { code: 4401, reason }, reason);
      }
      // The same through the other carriers.
      const expired = await token('u', { exp: now - 10 });
      assert.deepEqual(await expectRefusal(relay, { headers: { Authorization: `Bearer ${expired}` } }), { status: 401, body: 'token expired' });
      assert.deepEqual(await expectRefusal(relay, { protocols: ['wsproxy', `bearer.${expired}`] }), { status: 401, body: 'token expired' });
      const viaProtocol = await openWs(`${relay}&errors=close`, { protocols: ['wsproxy', `bearer.${expired}`] });
      assert.equal(viaProtocol.protocol, 'wsproxy');
      assert.deepEqual(await closed(viaProtocol), { code: 4401, reason: 'token expired' });
    });

    it('401 names its scheme in WWW-Authenticate, as RFC 9110 §11.6.1 requires and AuthGuard does', async () => {
      const now = Math.floor(Date.now() / 1000);
      const refused = [`/relay?host=127.0.0.1&port=${echo.port}`, `/relay?host=127.0.0.1&port=${echo.port}&token=${await token('u', { exp: now - 10 })}`];
      for (const target of refused) {
        const text = await rawExchange(app.port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${UPGRADE_HEADERS}\r\n`);
        assert.match(text, /^HTTP\/1\.1 401 /);
        assert.match(text, /\r\nWWW-Authenticate: Bearer\r\n/i, target.includes('token') ? 'expired token' : 'no token');
      }
    });

    it('counts the per-user limit by sub across two client IPs', async () => {
      const alice = await token('user_alice');
      const bob = await token('user_bob');
      const fromA = { headers: { 'X-Forwarded-For': '203.0.113.10' } };
      const fromB = { headers: { 'X-Forwarded-For': '198.51.100.20' } };

      const first = await openWs(`${relay}&token=${alice}`, fromA);
      await echoes(first);
      assert.deepEqual(await expectRefusal(`${relay}&token=${alice}`, fromB), { status: 429, body: 'too many connections for this user' });
      assert.deepEqual(await expectCloseRefusal(`${relay}&token=${alice}&errors=close`, fromB), {
        code: 4429,
        reason: 'too many connections for this user',
      });
      // Another user from the second IP is fine.
      const bobWs = await openWs(`${relay}&token=${bob}`, fromB);
      await echoes(bobWs);
      // Once alice's first relay ends, her slot is free again from anywhere.
      await closeWs(first);
      await waitFor(async () => (await userSlots('user_alice')) === 0, 3000, 'alice slot release');
      const second = await openWs(`${relay}&token=${alice}`, fromB);
      await echoes(second);
      await closeWs(second);
      await closeWs(bobWs);
      await waitFor(async () => (await userSlots('user_alice')) + (await userSlots('user_bob')) === 0, 3000, 'slots release');
    });
  });

  describe('GET /auth/whoami (AuthGuard)', () => {
    it('200 with the user id for a valid token', async () => {
      const t = await token('user_http');
      for (const init of [{ url: `${app.baseUrl}/auth/whoami?token=${t}` }, { url: `${app.baseUrl}/auth/whoami`, headers: { authorization: `Bearer ${t}` } }]) {
        const res = await fetch(init.url, { headers: init.headers });
        assert.equal(res.status, 200);
        assert.deepEqual(await res.json(), { userId: 'user_http' });
      }
    });

    it('401 with the same reasons as the WebSocket path', async () => {
      const now = Math.floor(Date.now() / 1000);
      const cases: [string | null, string][] = [
        [null, 'token missing'],
        [await token('u', { exp: now - 10 }), 'token expired'],
        [await token('u', { iss: 'https://evil.test' }), 'issuer mismatch'],
        [await mintToken(other, { sub: 'u', iss: 'https://clerk.test', aud: 'wsproxy' }, { kid: key.kid }), 'signature invalid'],
      ];
      for (const [t, reason] of cases) {
        const res = await fetch(`${app.baseUrl}/auth/whoami`, { headers: t === null ? {} : { authorization: `Bearer ${t}` } });
        assert.equal(res.status, 401, reason);
        assert.equal(res.headers.get('www-authenticate'), 'Bearer', reason);
        assert.deepEqual(await res.json(), { statusCode: 401, message: reason });
      }
    });
  });

  describe('JWKS never reachable', () => {
    let down: TestApp;
    before(async () => {
      down = await startApp({ CLERK_JWKS_URL: await unreachableJwksUrl(), JWKS_REFETCH_COOLDOWN_S: '0' });
    });
    after(async () => {
      await down?.close();
    });

    it('refuses /relay with 503 and Retry-After (4503 with errors=close), not 401', async () => {
      const query = `/relay?host=127.0.0.1&port=${echo.port}&token=${await token('user_x')}`;
      const url = `${down.wsUrl}${query}`;
      assert.deepEqual(await expectRefusal(url), { status: 503, body: 'authentication unavailable' });
      assert.deepEqual(await expectCloseRefusal(`${url}&errors=close`), { code: 4503, reason: 'authentication unavailable' });
      const text = await rawExchange(down.port, `GET ${query} HTTP/1.1\r\nHost: 127.0.0.1\r\n${UPGRADE_HEADERS}\r\n`);
      assert.match(text, /^HTTP\/1\.1 503 [^]*\r\nRetry-After: 5\r\n/);
    });

    it('answers 503 on GET /auth/whoami', async () => {
      const res = await fetch(`${down.baseUrl}/auth/whoami`, { headers: { authorization: `Bearer ${await token('user_x')}` } });
      assert.equal(res.status, 503);
      assert.equal(res.headers.get('retry-after'), '5', 'as the upgrade refusals say it');
      assert.equal(((await res.json()) as { message: string }).message, 'authentication unavailable');
    });
  });
});

describe('readiness follows the JWKS', () => {
  async function ready(app: TestApp): Promise<{ status: number; body: { details?: Record<string, { status: string }> } }> {
    const res = await fetch(`${app.baseUrl}/health/ready`);
    return { status: res.status, body: (await res.json()) as { details?: Record<string, { status: string }> } };
  }

  it('is not ready while no JWKS key was ever loaded, stays live, and becomes ready once the JWKS answers, with no request needed', async () => {
    const key = await makeKey('k-ready');
    const jwks = await JwksServer.start();
    jwks.answerRaw(503, '{}');
    const app = await startApp({ CLERK_JWKS_URL: jwks.url, JWKS_REFETCH_COOLDOWN_S: '0' });
    try {
      await waitFor(async () => jwks.requests > 0, 3000, 'the first JWKS fetch');
      const down = await ready(app);
      assert.equal(down.status, 503);
      assert.equal(down.body.details?.jwks?.status, 'down');
      assert.equal((await fetch(`${app.baseUrl}/health`)).status, 200);
      jwks.publish([key]);
      // Nothing connects to an unready replica: the probe itself has to bring the keys in, and says so at once.
      const fetchesBefore = jwks.requests;
      const first = await ready(app);
      assert.equal(jwks.requests, fetchesBefore + 1, 'the probe fetched the JWKS');
      assert.equal(first.status, 200, 'the probe that fetched the keys answers ready');
      assert.equal(first.body.details?.jwks?.status, 'up');
    } finally {
      await app.close();
      await jwks.stop();
    }
  });

  it('has no jwks check while authentication is off', async () => {
    const app = await startApp();
    try {
      const r = await ready(app);
      assert.equal(r.status, 200);
      assert.equal(r.body.details?.jwks, undefined);
    } finally {
      await app.close();
    }
  });
});
