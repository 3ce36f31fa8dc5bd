import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InMemoryPortPool } from './in-memory-port-pool.js';
import { InMemoryTunnelRegistry } from './in-memory-tunnel-registry.js';
import { newSubdomain, SUBDOMAIN_RE } from './subdomain.js';

const rec = (subdomain: string, user = 'u') => ({ subdomain, user, clientIp: '127.0.0.1', createdAt: 0 });

describe('InMemoryTunnelRegistry', () => {
  it('claims unique subdomains within the per-user limit, releases idempotently', async () => {
    const r = new InMemoryTunnelRegistry();
    assert.equal(await r.claim(rec('a'), 2), 'ok');
    assert.equal(await r.claim(rec('a', 'other'), 2), 'taken');
    assert.equal(await r.claim(rec('b'), 2), 'ok');
    assert.equal(await r.claim(rec('c'), 2), 'user_limit');
    assert.equal(await r.claim(rec('c', 'v'), 2), 'ok');
    assert.equal(await r.countForUser('u'), 2);
    await r.release('a');
    await r.release('a');
    assert.equal(await r.countForUser('u'), 1);
    assert.equal(await r.lookup('a'), null);
    assert.equal((await r.lookup('b'))?.user, 'u');
    assert.equal(await r.size(), 2);
  });
});

describe('InMemoryPortPool', () => {
  it('claims the lowest free port from a starting point, releases only for the owner', async () => {
    const p = new InMemoryPortPool(100, 102);
    assert.equal(await p.claim('a'), 100);
    assert.equal(await p.claim('b'), 101);
    assert.equal(await p.claim('c', 102), 102);
    assert.equal(await p.claim('d'), null);
    await p.release(100, 'not-a');
    assert.equal(await p.ownerOf(100), 'a');
    await p.release(100, 'a');
    assert.deepEqual(await p.claimed(), [101, 102]);
    assert.equal(await p.claim('e'), 100);
    assert.equal(await p.claim('f', 50), null);
  });
});

describe('newSubdomain', () => {
  it('is 16 lowercase hex characters and varies', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const s = newSubdomain();
      assert.match(s, SUBDOMAIN_RE);
      seen.add(s);
    }
    assert.equal(seen.size, 1000);
  });
});
