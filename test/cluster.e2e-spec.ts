import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { WebSocket } from 'ws';
import { ReplicaIdentity } from '../src/cluster/replica-identity.js';
import { CLUSTER_AUTH_HEADER, signClusterRequest } from '../src/cluster/internal-auth.js';
import { REDIS_COMMAND_TIMEOUT_MS } from '../src/cluster/cluster-settings.js';
import { PORTS_CHANNEL } from '../src/cluster/tunnels/tunnel-keys.js';
import { Redis } from 'ioredis';
import { LimitsService } from '../src/limits/limits.service.js';
import { startApp, type TestApp } from './support/app.js';
import { JwksServer, makeKey, mintToken, type TestKey } from './support/jwks.js';
import { clusterEnv, redisCommand, TestRedis, TEST_CLUSTER_SECRET } from './support/redis.js';
import { echoTarget, randomPayload, type TestTarget } from './support/targets.js';
import { httpTo, TUNNEL_DOMAIN, waitFor } from './support/tunnel.js';
import { closed, expectCloseRefusal, expectRefusal, openWs, receiveBytes } from './support/ws-client.js';
import { within } from './support/within.js';
import { UPGRADE_HEADERS, rawExchange } from './support/raw-http.js';

let redis: TestRedis;
let echo: TestTarget;
const apps: TestApp[] = [];
const sockets: WebSocket[] = [];

before(async () => {
  redis = await TestRedis.start();
  echo = await echoTarget();
});
after(async () => {
  await echo.close();
  await redis.close();
});
afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  for (const app of apps.splice(0)) await app.close();
  if (!redis.running) await redis.restart();
});

async function replica(env: Record<string, string> = {}): Promise<TestApp> {
  const app = await startApp(clusterEnv(redis, env));
  apps.push(app);
  return app;
}

function relayUrl(app: TestApp, query = ''): string {
  return `${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}${query}`;
}

async function relay(app: TestApp, query = '', headers: Record<string, string> = {}): Promise<WebSocket> {
  const ws = await openWs(relayUrl(app, query), { headers });
  sockets.push(ws);
  return ws;
}

/** Sends a few bytes and expects them back. */
async function echoes(ws: WebSocket): Promise<void> {
  const payload = randomPayload(1024);
  const got = receiveBytes(ws, payload.length);
  ws.send(payload);
  assert.deepEqual(await got, payload);
}

async function closeRelay(ws: WebSocket): Promise<void> {
  ws.close(1000);
  await closed(ws);
}

/** Retries an admission until it opens (a release reaches Redis asynchronously). */
async function eventuallyOpens(app: TestApp, query = '', headers: Record<string, string> = {}): Promise<WebSocket> {
  let last: unknown;
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    try {
      return await relay(app, query, headers);
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new Error(`relay never opened: ${String(last)}`);
}

async function status(url: string): Promise<number> {
  return (await fetch(url)).status;
}

async function metric(app: TestApp, series: string): Promise<number> {
  const text = await (await fetch(`${app.baseUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  if (!line) throw new Error(`series ${series} not exposed`);
  return Number(line.slice(series.length + 1));
}

describe('limits across two replicas', () => {
  it('counts per-IP connections cluster-wide', async () => {
    const a = await replica({ MAX_CONNS_PER_IP: '2', MAX_CONNS_PER_USER: '100' });
    const b = await replica({ MAX_CONNS_PER_IP: '2', MAX_CONNS_PER_USER: '100' });
    const onA = await relay(a);
    const onB = await relay(b);
    for (const app of [a, b]) {
      const r = await expectRefusal(relayUrl(app));
      assert.equal(r.status, 429);
      assert.equal(r.body, 'too many connections from this IP');
    }
    await echoes(onA);
    await echoes(onB);
    // A slot given back on A can be taken on B.
    await closeRelay(onA);
    await eventuallyOpens(b);
    assert.equal((await expectRefusal(relayUrl(a))).status, 429);
    assert.deepEqual((await a.app.get(LimitsService).snapshot()).perIp, {});
    assert.deepEqual((await b.app.get(LimitsService).snapshot()).perIp, { '127.0.0.1': 2 });
  });

  describe('per user', () => {
    let jwks: JwksServer;
    let key: TestKey;
    before(async () => {
      key = await makeKey();
      jwks = await JwksServer.start([key]);
    });
    after(() => jwks.stop());

    it('counts per-user connections cluster-wide, from any IP', async () => {
      const env = { CLERK_JWKS_URL: jwks.url, MAX_CONNS_PER_IP: '100', MAX_CONNS_PER_USER: '2', TRUSTED_PROXIES: '127.0.0.1' };
      const a = await replica(env);
      const b = await replica(env);
      const alice = `&token=${await mintToken(key, { sub: 'alice' })}`;
      const bob = `&token=${await mintToken(key, { sub: 'bob' })}`;
      const from = (ip: string): { headers: Record<string, string> } => ({ headers: { 'x-forwarded-for': ip } });
      const first = await relay(a, alice, from('192.0.2.1').headers);
      await relay(b, alice, from('192.0.2.2').headers);
      for (const app of [a, b]) {
        const r = await expectRefusal(relayUrl(app, alice), from('192.0.2.3'));
        assert.equal(r.status, 429);
        assert.equal(r.body, 'too many connections for this user');
      }
      // Another user is not affected.
      await echoes(await relay(b, bob, from('192.0.2.3').headers));
      await closeRelay(first);
      await eventuallyOpens(b, alice, from('192.0.2.4').headers);
    });
  });
});

describe('Redis loss', () => {
  it('refuses new relays with 503 while live relays keep echoing; a fresh Redis is whole again within a beat', async () => {
    const env = { MAX_CONNS_PER_IP: '3', MAX_CONNS_PER_USER: '100' };
    const a = await replica(env);
    const b = await replica(env);
    const held = await relay(a);
    const releasedDuringOutage = await relay(a);
    assert.equal(await status(`${a.baseUrl}/health/ready`), 200);

    await redis.stop();

    for (const app of [a, b]) {
      const r = await expectRefusal(relayUrl(app));
      assert.equal(r.status, 503);
      assert.equal(r.body, 'cluster state unavailable');
      const c = await expectCloseRefusal(relayUrl(app, '&errors=close'));
      assert.deepEqual(c, { code: 4503, reason: 'cluster state unavailable' });
      const path = relayUrl(app).slice(app.wsUrl.length);
      assert.match(await rawExchange(app.port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${UPGRADE_HEADERS}\r\n`), /^HTTP\/1\.1 503 [^]*\r\nRetry-After: 5\r\n/);
      const metrics = await (await fetch(`${app.baseUrl}/metrics`)).text();
      assert.match(metrics, /^wsproxy_admission_refusals_total\{reason="cluster"\} 3$/m, 'every refusal counted as cluster');
    }
    await echoes(held);
    // Released while Redis is gone: only the local truth changes.
    await closeRelay(releasedDuringOutage);
    await waitFor(async () => (await a.app.get(LimitsService).snapshot()).perIp['127.0.0.1'] === 1, 5000, 'local release');

    assert.equal(await status(`${a.baseUrl}/health`), 200, 'liveness does not depend on Redis');
    const ready = await fetch(`${a.baseUrl}/health/ready`);
    assert.equal(ready.status, 503);
    const body = (await ready.json()) as { error: Record<string, { status: string }> };
    assert.equal(body.error.redis?.status, 'down');
    await waitFor(async () => (await metric(a, 'wsproxy_cluster_heartbeat_failures_total')) > 0, 5000, 'a failed heartbeat');

    // A fresh Redis, empty: both replicas re-publish their shares by themselves.
    await redis.restart();
    for (const app of [a, b]) await waitFor(async () => (await status(`${app.baseUrl}/health/ready`)) === 200, 10_000, 'readiness');

    // A's held relay is counted again (1), the one released during the outage is not: B gets exactly 2.
    await relay(b);
    await relay(b);
    const r = await expectRefusal(relayUrl(b));
    assert.equal(r.status, 429);
    assert.equal(r.body, 'too many connections from this IP');
    await echoes(held);
  });

  it('fails admissions fast when Redis stops answering without closing the connection, and recovers', async () => {
    const env = { MAX_CONNS_PER_IP: '2', MAX_CONNS_PER_USER: '100' };
    const a = await replica(env);
    const b = await replica(env);
    const held = await relay(a);
    redis.pause();
    try {
      // Fast: within a few of the cluster's Redis command timeouts (REDIS_COMMAND_TIMEOUT_MS), not a connection timeout.
      const r = await within(expectRefusal(relayUrl(b)), 4 * REDIS_COMMAND_TIMEOUT_MS, 'the refusal');
      assert.equal(r.status, 503);
      assert.equal(r.body, 'cluster state unavailable');
      await echoes(held);
      assert.equal(await status(`${a.baseUrl}/health`), 200);
      assert.equal(await status(`${a.baseUrl}/health/ready`), 503);
    } finally {
      redis.resume();
    }
    // Late replies of timed-out commands are discarded; the next beats make the counts right again.
    await waitFor(async () => (await status(`${b.baseUrl}/health/ready`)) === 200, 10_000, 'readiness');
    await eventuallyOpens(b);
    const r = await expectRefusal(relayUrl(b));
    assert.equal(r.status, 429, 'the held relay on A and the new one on B fill the per-IP limit of 2');
    await echoes(held);
  });

  it('refuses new relays (503, unready) after Redis lost its state (FLUSHALL) until every share is back, never admitting past the limit', async () => {
    const env = { MAX_CONNS_PER_IP: '2', MAX_CONNS_PER_USER: '100' };
    const a = await replica(env);
    const b = await replica(env);
    const held = [await relay(a), await relay(a)];
    assert.equal((await expectRefusal(relayUrl(b))).status, 429);
    await redisCommand(redis, ['FLUSHALL']);
    // Before, B counted only the shares re-published so far: none, until A's next beat.
    const r = await expectRefusal(relayUrl(b));
    assert.equal(r.status, 503);
    assert.equal(r.body, 'cluster state unavailable');
    await waitFor(async () => (await (await fetch(`${b.baseUrl}/health/ready`)).text()).includes('warming up'), 3000, 'B unready while warming up');
    await waitFor(async () => (await status(`${b.baseUrl}/health/ready`)) === 200, 5000, 'B ready again');
    const after = await expectRefusal(relayUrl(b));
    assert.equal(after.status, 429, "A's two relays count again");
    for (const ws of held) await echoes(ws);
  });

  it('is unready from the first admission that finds the cluster state warming up, not from its next beat', async () => {
    // Beats a second apart: the next one is unlikely to fall between the refusal and the readiness probe.
    const a = await replica({ CLUSTER_HEARTBEAT_MS: '1000' });
    await eventuallyOpens(a).then(closeRelay);
    await redisCommand(redis, ['FLUSHALL']);
    const r = await expectRefusal(relayUrl(a));
    assert.equal(r.status, 503);
    const ready = await fetch(`${a.baseUrl}/health/ready`);
    assert.equal(ready.status, 503, 'a replica that refuses every admission is not ready');
    assert.match(await ready.text(), /warming up/);
    await waitFor(async () => (await status(`${a.baseUrl}/health/ready`)) === 200, 6000, 'ready once the warm-up is over');
    await eventuallyOpens(a);
  });

  it('starts while Redis is down (live, not ready) and admits once Redis appears', async () => {
    await redis.stop();
    const a = await replica();
    assert.equal(await status(`${a.baseUrl}/health`), 200);
    assert.equal(await status(`${a.baseUrl}/health/ready`), 503);
    assert.equal((await expectRefusal(relayUrl(a))).status, 503);
    await redis.restart();
    await waitFor(async () => (await status(`${a.baseUrl}/health/ready`)) === 200, 10_000, 'readiness');
    await echoes(await relay(a));
    // It also hears port changes at once, not only at its beats: its subscription was made once Redis came.
    const probe = new Redis(redis.url, { lazyConnect: true });
    try {
      await probe.connect();
      const subscribers = async (): Promise<number> => Number(((await probe.pubsub('NUMSUB', PORTS_CHANNEL)) as [string, number])[1]);
      await waitFor(async () => (await subscribers()) === 1, 5000, 'the replica subscribed to port changes');
    } finally {
      probe.disconnect();
    }
  });
});

describe('Redis configuration', () => {
  it('stays unready and refuses relays when Redis refuses the database REDIS_URL selects, writing nothing into database 0', async () => {
    const probe = new Redis(redis.url, { lazyConnect: true });
    try {
      await probe.connect();
      await probe.flushall();
      const a = await replica({ REDIS_URL: `${redis.url}/99` });
      assert.equal(await status(`${a.baseUrl}/health`), 200);
      assert.equal(await status(`${a.baseUrl}/health/ready`), 503);
      assert.equal((await expectRefusal(relayUrl(a))).status, 503);
      // Several heartbeat periods (200 ms): a replica that carried on in database 0 would have beaten there by now.
      await new Promise((r) => setTimeout(r, 800));
      assert.equal(await status(`${a.baseUrl}/health/ready`), 503);
      assert.equal(await probe.dbsize(), 0);
    } finally {
      probe.disconnect();
    }
  });
});

describe('internal endpoints', () => {
  const PING = '/_cluster/ping';

  it('refuse requests without the secret (401) or with a wrong one (403)', async () => {
    const a = await replica();
    const none = await fetch(`${a.baseUrl}${PING}`);
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'WsproxyCluster', 'a 401 names the scheme (RFC 9110 §11.6.1)');
    for (const value of [
      TEST_CLUSTER_SECRET,
      signClusterRequest('a-different-secret-of-some-length', 'GET', PING),
      signClusterRequest(TEST_CLUSTER_SECRET, 'GET', '/_cluster/other'),
      signClusterRequest(TEST_CLUSTER_SECRET, 'GET', PING, Date.now() - 10 * 60_000),
    ]) {
      const res = await fetch(`${a.baseUrl}${PING}`, { headers: { [CLUSTER_AUTH_HEADER]: value } });
      assert.equal(res.status, 403, value);
    }
    const ok = await fetch(`${a.baseUrl}${PING}`, { headers: { [CLUSTER_AUTH_HEADER]: signClusterRequest(TEST_CLUSTER_SECRET, 'GET', PING) } });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { replica: a.app.get(ReplicaIdentity).id });
  });

  it('are never reached through a tunnel subdomain', async () => {
    const a = await replica({ TUNNEL_DOMAIN, TUNNEL_PUBLIC_SCHEME: 'http' });
    const res = await httpTo(a.port, `abc.${TUNNEL_DOMAIN}`, {
      path: PING,
      headers: { [CLUSTER_AUTH_HEADER]: signClusterRequest(TEST_CLUSTER_SECRET, 'GET', PING) },
    });
    assert.equal(res.status, 404);
    assert.ok(!res.body.toString().includes(a.app.get(ReplicaIdentity).id));
  });

  it('do not exist on a single node', async () => {
    const single = await startApp();
    apps.push(single);
    const res = await fetch(`${single.baseUrl}${PING}`, { headers: { [CLUSTER_AUTH_HEADER]: signClusterRequest(TEST_CLUSTER_SECRET, 'GET', PING) } });
    assert.equal(res.status, 404);
  });
});

describe('cluster metrics', () => {
  it('expose Redis round trips, heartbeats and live replicas', async () => {
    const a = await replica();
    await replica();
    await closeRelay(await relay(a));
    await waitFor(async () => (await metric(a, 'wsproxy_cluster_replicas')) === 2, 5000, 'two live replicas');
    assert.ok((await metric(a, 'wsproxy_cluster_redis_duration_seconds_count{op="admit",result="ok"}')) >= 1);
    await waitFor(
      async () => (await metric(a, 'wsproxy_cluster_redis_duration_seconds_count{op="release",result="ok"}')) >= 1,
      5000,
      'a release round trip',
    );
    assert.ok((await metric(a, 'wsproxy_cluster_heartbeats_total')) >= 1);
    assert.equal(await metric(a, 'wsproxy_cluster_heartbeat_failures_total'), 0);
    assert.equal(await metric(a, 'wsproxy_cluster_redis_up'), 1);
  });
});
