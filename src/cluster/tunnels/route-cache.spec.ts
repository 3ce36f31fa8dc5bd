import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../test/support/clock.js';
import type { ClusterTunnelRecord } from './cluster-tunnel-state.js';
import { ROUTE_CACHE_MAX_ENTRIES, RouteCache } from './route-cache.js';

function record(subdomain: string): ClusterTunnelRecord {
  return { subdomain, user: 'u', clientIp: '127.0.0.1', createdAt: 1, replica: 'feedfeedfeedfeed', url: 'http://127.0.0.1:8080' };
}

describe('RouteCache', () => {
  it('reuses an owner for less than the TTL, then no more', () => {
    const clock = new ManualClock();
    const cache = new RouteCache(1000, clock);
    cache.set('abc', record('abc'));
    clock.advance(999);
    assert.deepEqual(cache.get('abc'), record('abc'));
    clock.advance(1);
    assert.equal(cache.get('abc'), undefined);
  });

  it('forgets an owner at once', () => {
    const cache = new RouteCache(1000, new ManualClock());
    cache.set('abc', record('abc'));
    cache.set('def', record('def'));
    cache.forget('abc');
    assert.equal(cache.get('abc'), undefined);
    assert.deepEqual(cache.get('def'), record('def'));
  });

  it('starts over when full, so made-up subdomains cannot grow it', () => {
    const cache = new RouteCache(1000, new ManualClock());
    for (let i = 0; i < ROUTE_CACHE_MAX_ENTRIES; i++) cache.set(`s${i}`, record(`s${i}`));
    assert.deepEqual(cache.get('s0'), record('s0'));
    cache.set('one-more', record('one-more'));
    assert.equal(cache.get('s0'), undefined);
    assert.deepEqual(cache.get('one-more'), record('one-more'));
  });
});
