import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ipLimitKey } from './ip-limit-key.js';

describe('ipLimitKey', () => {
  it('counts an IPv4 address alone, an IPv4-mapped one as the IPv4 address', () => {
    assert.equal(ipLimitKey('192.0.2.7', 64), '192.0.2.7');
    assert.equal(ipLimitKey('::ffff:192.0.2.7', 64), '192.0.2.7');
    assert.equal(ipLimitKey('::ffff:c000:207', 48), '192.0.2.7');
  });

  it('counts the addresses of one IPv6 prefix as one client, and other prefixes apart', () => {
    const key = ipLimitKey('2001:db8:1:2::1', 64);
    assert.equal(key, '2001:db8:1:2::/64');
    assert.equal(ipLimitKey('2001:db8:1:2:ffff:ffff:ffff:ffff', 64), key);
    assert.equal(ipLimitKey('2001:DB8:1:2:0:0:0:9', 64), key);
    assert.notEqual(ipLimitKey('2001:db8:1:3::1', 64), key);
    assert.equal(ipLimitKey('2001:db8:1:2::1', 56), '2001:db8:1::/56');
    assert.equal(ipLimitKey('2001:db8:1:ff::1', 60), '2001:db8:1:f0::/60');
    assert.equal(ipLimitKey('::1', 64), '::/64');
  });

  it('counts each IPv6 address alone at 128', () => {
    assert.equal(ipLimitKey('2001:db8:1:2::1', 128), '2001:db8:1:2::1');
    assert.notEqual(ipLimitKey('2001:db8:1:2::2', 128), ipLimitKey('2001:db8:1:2::1', 128));
  });

  it('keeps a value that is no address as it is', () => {
    for (const v of ['', 'not:an:address', 'zz::1']) assert.equal(ipLimitKey(v, 64), v);
  });
});
