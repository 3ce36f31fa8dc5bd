import { shareIpKey } from '../src/cluster/cluster-keys.js';
import { livenessTtlMs } from '../src/cluster/cluster-settings.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { WebSocket } from 'ws';
import { startApp, type TestApp } from './support/app.js';
import { MAIN_JS, startServiceProcess, type ServiceProcess } from './support/process.js';
import { assertExpiringUnrenewed, clusterEnv, TestRedis } from './support/redis.js';
import { echoTarget, type TestTarget } from './support/targets.js';
import { closed, expectRefusal, openWs } from './support/ws-client.js';

describe('replica loss', () => {
  let redis: TestRedis;
  let echo: TestTarget;
  let a: ServiceProcess | undefined;
  let b: TestApp | undefined;

  before(async () => {
    redis = await TestRedis.start();
    echo = await echoTarget();
  });
  after(async () => {
    a?.child.kill('SIGKILL');
    await b?.close();
    await echo.close();
    await redis.close();
  });

  it('frees the slots of a SIGKILLed replica within the liveness TTL', async (t) => {
    const env = clusterEnv(redis, { MAX_CONNS_PER_IP: '2', MAX_CONNS_PER_USER: '100' });
    const ttl = livenessTtlMs({ clusterHeartbeatMs: Number(env.CLUSTER_HEARTBEAT_MS) });
    a = await startServiceProcess(env);
    b = await startApp(env);
    const url = (port: number): string => `ws://127.0.0.1:${port}/relay?host=127.0.0.1&port=${echo.port}`;
    const held: WebSocket[] = [await openWs(url(a.port)), await openWs(url(a.port))];
    const refused = await expectRefusal(url(b.port));
    assert.equal(refused.status, 429);
    assert.equal(refused.body, 'too many connections from this IP');

    a.child.kill('SIGKILL');
    await a.exited;
    const killedAt = Date.now();
    // Within the TTL by Redis's clock, however slow this run: nothing renews the dead replica's share (-2: already gone).
    const replica = /"event":"cluster_member","replica":"([0-9a-f]+)"/.exec(a.lines.join('\n'))?.[1];
    assert.ok(replica, a.lines.join('\n'));
    await assertExpiringUnrenewed(redis, shareIpKey(replica), ttl, Number(env.CLUSTER_HEARTBEAT_MS));
    for (const ws of held) await closed(ws);

    let ws: WebSocket | undefined;
    while (!ws) {
      try {
        ws = await openWs(url(b.port));
      } catch (err) {
        assert.equal((err as { status?: number }).status, 429, String(err));
        assert.ok(Date.now() - killedAt < ttl + 10_000, 'slots of the dead replica were never freed');
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    const freedAfter = Date.now() - killedAt;
    t.diagnostic(`slots freed ${freedAfter} ms after SIGKILL (TTL ${ttl} ms)`);
    ws.close(1000);
    await closed(ws);
  });
});

describe('Redis with a password', () => {
  const PASSWORD = 'redis-pass-0123456789';
  let redis: TestRedis;
  let echo: TestTarget;
  const procs: ServiceProcess[] = [];

  before(async () => {
    redis = await TestRedis.start({ password: PASSWORD });
    echo = await echoTarget();
  });
  after(async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    await echo.close();
    await redis.close();
  });

  it('authenticates with the password in REDIS_URL; a wrong one leaves the replica live, not ready, refusing with 503, and is never logged', async () => {
    const good = await startServiceProcess(clusterEnv(redis));
    procs.push(good);
    const ws = await openWs(`ws://127.0.0.1:${good.port}/relay?host=127.0.0.1&port=${echo.port}`);
    ws.close(1000);
    await closed(ws);
    assert.equal((await fetch(`http://127.0.0.1:${good.port}/health/ready`)).status, 200);
    // Its address is derived from a loopback BIND_HOST: said once, as a warning, since other hosts cannot reach it.
    assert.ok(good.lines.some((l) => l.includes('"event":"cluster_loopback_advertise_url"') && l.includes('"level":40')), good.lines.join('\n'));
    assert.ok(good.lines.some((l) => l.includes('"event":"cluster_member"') && l.includes('derived: http://127.0.0.1')), good.lines.join('\n'));

    const wrongPassword = 'not-the-redis-password';
    const bad = await startServiceProcess(clusterEnv(redis, { REDIS_URL: `redis://:${wrongPassword}@127.0.0.1:${redis.port}` }));
    procs.push(bad);
    assert.equal((await fetch(`http://127.0.0.1:${bad.port}/health`)).status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${bad.port}/health/ready`)).status, 503);
    const refused = await expectRefusal(`ws://127.0.0.1:${bad.port}/relay?host=127.0.0.1&port=${echo.port}`);
    assert.equal(refused.status, 503);
    assert.equal(refused.body, 'cluster state unavailable');
    assert.ok(bad.lines.some((l) => l.includes('"event":"cluster_redis_down"')), bad.lines.join('\n'));
    for (const p of [good, bad]) {
      const out = p.lines.join('\n');
      assert.ok(!out.includes(PASSWORD) && !out.includes(wrongPassword), 'no Redis password in the logs');
    }
  });
});

describe('cluster configuration', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ REDIS_URL: 'redis://127.0.0.1:6379' }, /^invalid configuration: CLUSTER_SECRET is missing or shorter than 16 characters while REDIS_URL is set/],
    [{ REDIS_URL: 'redis://127.0.0.1:6379', CLUSTER_SECRET: 'short-secret' }, /^invalid configuration: CLUSTER_SECRET is missing or shorter/],
    [{ REDIS_URL: 'http://127.0.0.1:6379', CLUSTER_SECRET: 'a-long-enough-cluster-secret' }, /^invalid configuration: REDIS_URL uses http:/],
    ...['::0', '[::]', '0:0:0:0:0:0:0:0'].map(
      (bindHost): [Record<string, string>, RegExp] => [
        { REDIS_URL: 'redis://127.0.0.1:6379', CLUSTER_SECRET: 'a-long-enough-cluster-secret', BIND_HOST: bindHost },
        /^invalid configuration: CLUSTER_ADVERTISE_URL is missing while REDIS_URL is set and BIND_HOST listens on all interfaces/,
      ],
    ),
  ];
  for (const [env, pattern] of cases) {
    it(`refuses to start on ${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')} with one line and exit 1`, () => {
      const r = spawnSync(process.execPath, [MAIN_JS], { env: { PATH: process.env.PATH ?? '', PORT: '0', ...env }, encoding: 'utf8', timeout: 20000 });
      assert.equal(r.status, 1);
      const out = (r.stderr + r.stdout).trim();
      assert.equal(out.split('\n').length, 1, `one line, got:\n${out}`);
      assert.match(out, pattern);
      if (env.CLUSTER_SECRET) assert.ok(!out.includes(env.CLUSTER_SECRET), 'the secret is not printed');
    });
  }
});
