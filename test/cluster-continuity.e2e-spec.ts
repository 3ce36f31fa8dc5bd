/**
 * The cluster scripts' continuity rule against a real Redis, replica by
 * replica (no app): after Redis loses its state, or runs no script for longer
 * than a live replica stays silent, nothing is admitted or claimed until
 * every live replica has had one liveness TTL to re-publish its share. Before,
 * the first admission after such a gap counted only the shares that happened
 * to be there and let the cluster past its limits.
 */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { ADMIT_LUA, HEARTBEAT_LUA } from '../src/cluster/cluster-scripts.js';
import { CLOCK_KEY, REPLICAS_KEY, SHARE_PREFIX, WARMING_KEY, shareIpKey, shareUserKey } from '../src/cluster/cluster-keys.js';
import { continuityMs, livenessTtlMs } from '../src/cluster/cluster-settings.js';
import { PORT_CLAIM_LUA, PORT_CLAIM_WARMING, TUNNEL_CLAIM_LUA } from '../src/cluster/tunnels/tunnel-scripts.js';
import { PORT_PREFIX, PORTS_CHANNEL, TUNNEL_USERS_PREFIX, replicaPortsKey, tunnelKey, tunnelUsersKey } from '../src/cluster/tunnels/tunnel-keys.js';
import { TestRedis } from './support/redis.js';

const SETTINGS = { clusterHeartbeatMs: 1000 };
const BEAT_MS = SETTINGS.clusterHeartbeatMs;
const TTL_MS = livenessTtlMs(SETTINGS);
/** The continuity clock's lifetime: the last argument of every script that renews it. */
const CLOCK_MS = String(continuityMs(SETTINGS));
const IP = '198.51.100.7';
const MAX_PER_IP = 2;

let redis: TestRedis;
let client: Redis;

before(async () => {
  redis = await TestRedis.start();
  client = new Redis(redis.url, { lazyConnect: true });
  await client.connect();
});
after(async () => {
  client.disconnect();
  await redis.close();
});
beforeEach(async () => {
  await client.flushall();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Replica `id` publishes that it holds `count` connections from IP. Resolves with the warm-up left, ms. */
async function heartbeat(id: string, count: number): Promise<number> {
  const reply = (await client.eval(HEARTBEAT_LUA, 3, REPLICAS_KEY, shareIpKey(id), shareUserKey(id), id, String(TTL_MS), '1', IP, String(count), '1', 'u', String(count), CLOCK_MS)) as [number, number];
  return reply[1];
}

/** Replica `id` asks for one more connection from IP. */
async function admit(id: string): Promise<string> {
  return (await client.eval(ADMIT_LUA, 3, REPLICAS_KEY, shareIpKey(id), shareUserKey(id), id, IP, 'u', String(MAX_PER_IP), '100', String(TTL_MS), SHARE_PREFIX, CLOCK_MS)) as string;
}

/** Replica `id` beats every beat, as a live one does, for `ms`. */
async function beatingFor(id: string, count: number, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    await heartbeat(id, count);
    await sleep(BEAT_MS);
  }
}

/** A cluster that has been running: past its first warm-up, replica a holding the whole per-IP limit. */
async function runningClusterAtLimit(): Promise<void> {
  await beatingFor('a', MAX_PER_IP, TTL_MS + 50);
  assert.equal(await heartbeat('a', MAX_PER_IP), 0, 'warmed up');
  assert.equal(await admit('b'), 'ip', 'the limit holds while the state is continuous');
}

describe('cluster state continuity (scripts on a real Redis)', () => {
  it('a new cluster warms up for one liveness TTL before it admits', async () => {
    assert.equal(await admit('a'), 'warming');
    const left = await heartbeat('a', 0);
    assert.ok(left > 0 && left <= TTL_MS, `warm-up left: ${left} ms`);
    await beatingFor('a', 0, TTL_MS + 50);
    assert.equal(await admit('a'), 'ok');
  });

  it('refuses admissions after Redis lost its state (FLUSHALL) until the shares are back, then counts them all', async () => {
    await runningClusterAtLimit();
    await client.flushall();
    // Before, b's share-less count admitted past the limit here.
    assert.equal(await admit('b'), 'warming');
    assert.ok((await heartbeat('a', MAX_PER_IP)) > 0, 'a learns of the warm-up from its heartbeat');
    assert.equal(await admit('b'), 'warming');
    await beatingFor('a', MAX_PER_IP, TTL_MS + 50);
    assert.equal(await admit('b'), 'ip', "a's re-published share counts again");
  });

  it('refuses admissions after a silence that lapsed a live replica (a stalled Redis), until it has beaten again', async () => {
    await runningClusterAtLimit();
    // No script for longer than the clock lives: a's deadline may have passed although a lives (its beats would be queued behind the stall).
    await sleep(Number(CLOCK_MS) + 200);
    assert.equal(await client.exists(CLOCK_KEY), 0);
    assert.equal(await admit('b'), 'warming');
    assert.equal(await client.exists(WARMING_KEY), 1);
    await beatingFor('a', MAX_PER_IP, TTL_MS + 50);
    assert.equal(await admit('b'), 'ip');
  });

  it('keeps counting through a silence the clock outlives: every live share still counts', async () => {
    await runningClusterAtLimit();
    await sleep(Number(CLOCK_MS) - 300);
    assert.equal(await admit('b'), 'ip', "a's share, a beat and a half old at most, still counts");
    await heartbeat('a', 1);
    assert.equal(await admit('b'), 'ok');
    assert.equal(await admit('b'), 'ip');
  });

  it('refuses tunnel and raw-port claims while warming up', async () => {
    const claimTunnel = async (): Promise<string> =>
      (await client.eval(TUNNEL_CLAIM_LUA, 3, REPLICAS_KEY, tunnelKey('0123456789abcdef'), tunnelUsersKey('a'), 'a', String(TTL_MS), 'u', '5', '{}', TUNNEL_USERS_PREFIX, CLOCK_MS)) as string;
    const claimPort = async (): Promise<number> =>
      Number(await client.eval(PORT_CLAIM_LUA, 2, REPLICAS_KEY, replicaPortsKey('a'), 'a', String(TTL_MS), '0123456789abcdef', '40000', '40001', PORT_PREFIX, PORTS_CHANNEL, CLOCK_MS));
    assert.equal(await claimTunnel(), 'warming');
    assert.equal(await claimPort(), PORT_CLAIM_WARMING);
    await beatingFor('a', 0, TTL_MS + 50);
    assert.equal(await claimTunnel(), 'ok');
    assert.equal(await claimPort(), 40000);
  });
});
