import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { REDIS_COMMAND_TIMEOUT_MS } from '../src/cluster/cluster-settings.js';
import { TunnelTcpForwarding } from '../src/cluster/tunnels/tcp-forwarding.js';
import { portKey, REPLICA_PORTS_PREFIX, tunnelKey } from '../src/cluster/tunnels/tunnel-keys.js';
import { TunnelClient } from '../src/tunnel/client/tunnel-client.js';
import { startApp, type TestApp } from './support/app.js';
import { startServiceProcess, type ServiceProcess } from './support/process.js';
import { clusterEnv, redisCommand, TestRedis } from './support/redis.js';
import { startRedisRelay } from './support/redis-relay.js';
import { echoTarget, randomPayload, type TestTarget } from './support/targets.js';
import { dial, readBytes } from './support/tcp-client.js';
import { httpTo, startHttpService, tunnelEnv, TUNNEL_DOMAIN, waitFor, type HttpService } from './support/tunnel.js';
import { within } from './support/within.js';

const HOST_A = '127.0.0.2';
const HOST_B = '127.0.0.3';

/** A tunnel with a raw port held by a replica running as a child process, whose event loop the test stops (SIGSTOP). */
interface StalledOwner {
  readonly owner: ServiceProcess;
  readonly entry: TestApp;
  readonly client: TunnelClient;
  readonly host: string;
  readonly port: number;
  /** How the tunnel client's connection closed, once it has. */
  closedWith(): unknown;
}

/** What both suites run against: a Redis, a local HTTP service answering `ok` and a TCP echo target. */
interface StallFixture {
  readonly redis: TestRedis;
  readonly service: HttpService;
  readonly echo: TestTarget;
}

/** Starts a `StallFixture` before the tests of the calling `describe` (its fields are set then) and closes it after them. */
function stallFixture(): StallFixture {
  const fixture = {} as { -readonly [K in keyof StallFixture]: StallFixture[K] };
  before(async () => {
    fixture.redis = await TestRedis.start();
    fixture.service = await startHttpService((_req, _body, res) => res.end('ok'));
    fixture.echo = await echoTarget();
  });
  after(async () => {
    await fixture.service.close();
    await fixture.echo.close();
    await fixture.redis.close();
  });
  return fixture;
}

/** Echoes `bytes` random bytes through `host:port`. */
async function echoesThrough(host: string, port: number, bytes = 64 * 1024): Promise<void> {
  const s = await dial(port, host);
  const payload = randomPayload(bytes);
  const got = readBytes(s, payload.length);
  s.write(payload);
  assert.ok((await got).equals(payload), `echoed byte-exactly through ${host}:${port}`);
  s.destroy();
}

describe('a replica whose event loop stalls', () => {
  const fixture = stallFixture();

  /**
   * Starts the owner (a child process) and an entry replica, opens a tunnel
   * with a raw port on the owner, stops the owner's event loop and waits
   * until its claims have expired in Redis: the stall outlasted the liveness
   * TTL, whatever the machine's speed. `test` resumes it.
   */
  async function withStalledOwner(test: (s: StalledOwner) => Promise<void>): Promise<void> {
    const env = clusterEnv(fixture.redis, await tunnelEnv({}, 4));
    const owner = await startServiceProcess({ ...env, TUNNEL_BIND_HOST: HOST_A });
    const entry = await startApp({ ...env, TUNNEL_BIND_HOST: HOST_B });
    const client = await TunnelClient.connect({ proxy: `ws://127.0.0.1:${owner.port}/tunnel`, to: fixture.service.target, tcpTo: `127.0.0.1:${fixture.echo.port}` });
    let closedWith: unknown;
    void client.closed.then((c) => (closedWith = c));
    try {
      const host = `${client.subdomain}.${TUNNEL_DOMAIN}`;
      const port = client.rawPort;
      assert.ok(port > 0);
      assert.equal((await httpTo(entry.port, host)).status, 200);
      await waitFor(() => entry.app.get(TunnelTcpForwarding).followedPorts().includes(port), 10_000, 'the entry following the raw port');

      owner.child.kill('SIGSTOP');
      const expired = async (): Promise<boolean> =>
        (await redisCommand(fixture.redis, ['EXISTS', tunnelKey(client.subdomain)])) === '0' && (await redisCommand(fixture.redis, ['EXISTS', portKey(port)])) === '0';
      await waitFor(expired, 20_000, "the owner's tunnel record and port claim expiring", 100);
      // Meanwhile the owner is dead to the cluster: its subdomain is unknown.
      const during = await httpTo(entry.port, host);
      assert.equal(during.status, 404);
      assert.equal(during.body.toString(), 'tunnel not found\n');
      await test({ owner, entry, client, host, port, closedWith: () => closedWith });
    } finally {
      owner.child.kill('SIGCONT');
      await client.close().catch(() => undefined);
      owner.child.kill('SIGKILL');
      await owner.exited;
      await entry.close();
    }
  }

  it('keeps its tunnels through a stall longer than the liveness TTL: its next beat re-publishes the subdomain and re-claims the raw port, the client stays connected', async () => {
    await withStalledOwner(async ({ owner, entry, host, port, closedWith }) => {
      owner.child.kill('SIGCONT');
      await waitFor(async () => (await httpTo(entry.port, host)).status === 200, 10_000, 'the subdomain answering through the entry again', 50);
      await waitFor(() => entry.app.get(TunnelTcpForwarding).followedPorts().includes(port), 10_000, 'the entry following the raw port again');
      await echoesThrough(HOST_B, port);
      await echoesThrough(HOST_A, port);
      assert.equal(closedWith(), undefined, 'before, the tunnel closed (1012 "raw port lost: reconnect") as the loop resumed');
      assert.equal((await httpTo(owner.port, host)).status, 200);
    });
  });

  it('closes a tunnel (1012) whose raw port another replica claimed during the stall, and leaves that claim alone', async () => {
    await withStalledOwner(async ({ owner, client, port }) => {
      await redisCommand(fixture.redis, ['SET', portKey(port), 'another-replica 0123456789abcdef', 'PX', '60000']);
      owner.child.kill('SIGCONT');
      assert.deepEqual(await within(client.closed, 10_000, 'the tunnel closed'), { code: 1012, reason: 'raw port lost: reconnect' });
      assert.equal(await redisCommand(fixture.redis, ['GET', portKey(port)]), 'another-replica 0123456789abcdef');
      await redisCommand(fixture.redis, ['DEL', portKey(port)]);
    });
  });

  it('gives up its raw ports (1012) after a stall when Redis does not answer the beat that would re-claim them', async () => {
    await withStalledOwner(async ({ owner, client }) => {
      fixture.redis.pause();
      try {
        owner.child.kill('SIGCONT');
        assert.deepEqual(await within(client.closed, 10_000, 'the tunnel closed'), { code: 1012, reason: 'raw port lost: reconnect' });
      } finally {
        fixture.redis.resume();
      }
    });
  });
});

describe('a replica whose event loop stalls with a Redis reply on its way', () => {
  const fixture = stallFixture();

  it('keeps its raw ports through a stall that starts as a heartbeat leaves: the reply that came meanwhile renewed them', async () => {
    // Beats a second apart: the fence point (TTL less one beat, 2 s) comes before a gap between two beats reads as a stall (1.5 beats).
    const relay = await startRedisRelay(fixture.redis.port);
    const env = clusterEnv(fixture.redis, await tunnelEnv({ CLUSTER_HEARTBEAT_MS: '1000' }, 4));
    const owner = await startServiceProcess({ ...env, REDIS_URL: relay.url, TUNNEL_BIND_HOST: HOST_A });
    const client = await TunnelClient.connect({ proxy: `ws://127.0.0.1:${owner.port}/tunnel`, to: fixture.service.target, tcpTo: `127.0.0.1:${fixture.echo.port}` });
    let closedWith: unknown;
    void client.closed.then((c) => (closedWith = c));
    const beatSent = (): Promise<void> => new Promise((resolve) => relay.onSent(REPLICA_PORTS_PREFIX, resolve));
    try {
      await echoesThrough(HOST_A, client.rawPort);
      // Its loop stops as the beat goes out; Redis answers meanwhile.
      const stopped = new Promise<void>((resolve) =>
        relay.onSent(REPLICA_PORTS_PREFIX, () => {
          relay.hold();
          owner.child.kill('SIGSTOP');
          resolve();
        }),
      );
      await stopped;
      relay.release();
      // Past the fence point counted from the beat before, with the next beat overdue (its timer runs first).
      await new Promise((r) => setTimeout(r, 1250));
      owner.child.kill('SIGCONT');
      await beatSent();
      await beatSent();
      await echoesThrough(HOST_A, client.rawPort);
      assert.equal(closedWith, undefined, 'before, the tunnel closed (1012 "raw port lost: reconnect") as the loop resumed');
    } finally {
      owner.child.kill('SIGCONT');
      await client.close().catch(() => undefined);
      owner.child.kill('SIGKILL');
      await owner.exited;
      await relay.close();
    }
  });

  it('takes the reply that arrived during the stall: the requester gets the tunnel, not 503 "cluster state unavailable"', async () => {
    const relay = await startRedisRelay(fixture.redis.port);
    const env = clusterEnv(fixture.redis, await tunnelEnv({ TUNNEL_TCP_ENABLED: 'false' }, 2));
    const entry = await startServiceProcess({ ...env, REDIS_URL: relay.url });
    const owner = await startApp(env);
    const client = await TunnelClient.connect({ proxy: `${owner.wsUrl}/tunnel`, to: fixture.service.target });
    try {
      const host = `${client.subdomain}.${TUNNEL_DOMAIN}`;
      // The entry's lookup of the subdomain reaches Redis, and its event loop stops before the reply comes.
      relay.hold();
      const lookupSent = new Promise<void>((resolve) =>
        relay.onSent(tunnelKey(client.subdomain), () => {
          entry.child.kill('SIGSTOP');
          resolve();
        }),
      );
      const answer = httpTo(entry.port, host);
      await lookupSent;
      relay.release();
      // The stall outlasts the command timeout; the reply waits in the entry's socket.
      await new Promise((r) => setTimeout(r, 2 * REDIS_COMMAND_TIMEOUT_MS));
      entry.child.kill('SIGCONT');
      const r = await answer;
      assert.equal(r.status, 200, `got ${r.status} ${r.body.toString().trim()}`);
      assert.equal(r.body.toString(), 'ok');
    } finally {
      entry.child.kill('SIGCONT');
      await client.close();
      entry.child.kill('SIGKILL');
      await entry.exited;
      await owner.close();
      await relay.close();
    }
  });

  it('shuts down though Redis stopped answering: its QUIT is bounded like every command', async () => {
    const relay = await startRedisRelay(fixture.redis.port);
    const app = await startApp(clusterEnv(fixture.redis, { REDIS_URL: relay.url }));
    try {
      relay.hold();
      // Generous: the leave commands before the QUIT each wait out the command timeout.
      await within(app.close(), 20 * REDIS_COMMAND_TIMEOUT_MS, 'before, the shutdown waited forever for the reply to QUIT');
    } finally {
      await relay.close();
    }
  });
});
