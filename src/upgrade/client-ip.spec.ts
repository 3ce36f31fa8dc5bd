import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { ClientIpResolver } from './client-ip.js';

function request(remoteAddress: string, headers: Record<string, string> = {}): IncomingMessage {
  return { socket: { remoteAddress }, headers } as unknown as IncomingMessage;
}

describe('ClientIpResolver', () => {
  const behindOneProxy = new ClientIpResolver(['127.0.0.1']);
  const behindTwo = new ClientIpResolver(['127.0.0.0/8', '10.0.0.0/8']);

  it('is the peer address when no proxy is trusted, whatever the headers say', () => {
    const none = new ClientIpResolver([]);
    assert.equal(none.resolve(request('192.0.2.1', { 'x-forwarded-for': '203.0.113.1', 'x-real-ip': '203.0.113.2' })), '192.0.2.1');
    assert.equal(none.resolve(request('::ffff:192.0.2.1')), '192.0.2.1');
  });

  it('ignores the headers of an untrusted peer', () => {
    assert.equal(behindOneProxy.resolve(request('192.0.2.1', { 'x-forwarded-for': '203.0.113.1' })), '192.0.2.1');
    assert.equal(behindOneProxy.resolve(request('192.0.2.1', { 'x-real-ip': '203.0.113.2' })), '192.0.2.1');
  });

  it('reads a trusted range written IPv4-mapped (::ffff:a.b.c.d/N) as the IPv4 range it maps', () => {
    const mapped = new ClientIpResolver(['::ffff:127.0.0.0/104']);
    assert.equal(mapped.resolve(request('127.0.0.5', { 'x-forwarded-for': '203.0.113.1' })), '203.0.113.1');
    assert.equal(mapped.resolve(request('::ffff:127.0.0.5', { 'x-forwarded-for': '203.0.113.1' })), '203.0.113.1');
    assert.equal(mapped.resolve(request('128.0.0.1', { 'x-forwarded-for': '203.0.113.1' })), '128.0.0.1');
  });

  it('takes the address the trusted proxy appended, not what the client put to its left', () => {
    assert.equal(behindOneProxy.resolve(request('127.0.0.1', { 'x-forwarded-for': '203.0.113.1' })), '203.0.113.1');
    // A client sending its own X-Forwarded-For through a proxy that appends cannot choose its address.
    assert.equal(behindOneProxy.resolve(request('127.0.0.1', { 'x-forwarded-for': '198.51.100.7, 203.0.113.1' })), '203.0.113.1');
    assert.equal(behindOneProxy.resolve(request('127.0.0.1', { 'x-forwarded-for': 'garbage, 203.0.113.1' })), '203.0.113.1');
  });

  it('walks through a chain of trusted proxies to the first untrusted hop', () => {
    assert.equal(behindTwo.resolve(request('127.0.0.1', { 'x-forwarded-for': '198.51.100.7, 203.0.113.1, 10.0.0.5' })), '203.0.113.1');
    assert.equal(behindTwo.resolve(request('127.0.0.1', { 'x-forwarded-for': '10.0.0.9, 10.0.0.5' })), '10.0.0.9');
    assert.equal(behindTwo.resolve(request('127.0.0.1', { 'x-forwarded-for': '::ffff:203.0.113.4, 10.0.0.5' })), '203.0.113.4');
  });

  it('stops at a malformed entry, at the last address a trusted proxy vouched for', () => {
    assert.equal(behindTwo.resolve(request('127.0.0.1', { 'x-forwarded-for': '203.0.113.1, not-an-ip, 10.0.0.5' })), '10.0.0.5');
    assert.equal(behindOneProxy.resolve(request('127.0.0.1', { 'x-forwarded-for': 'not-an-ip' })), '127.0.0.1');
  });

  it('reads a hop written with the port some load balancers append, IPv4 or IPv6 in brackets', () => {
    assert.equal(behindTwo.resolve(request('127.0.0.1', { 'x-forwarded-for': '203.0.113.1:52344' })), '203.0.113.1');
    assert.equal(behindTwo.resolve(request('127.0.0.1', { 'x-forwarded-for': '[2001:db8::7]:52344' })), '2001:db8::7');
    assert.equal(behindTwo.resolve(request('127.0.0.1', { 'x-forwarded-for': '[2001:db8::7]' })), '2001:db8::7');
    assert.equal(behindTwo.resolve(request('127.0.0.1', { 'x-forwarded-for': '198.51.100.7, 10.0.0.5:443' })), '198.51.100.7');
    // Anything else with a colon is no hop: the walk stops at the address before it.
    for (const bad of ['2001:db8::7:52344x', '[203.0.113.1]:1', '203.0.113.1:', '[2001:db8::7]:123456', '[zz::1]:1', '203.0.113.1:80:80']) {
      assert.equal(behindTwo.resolve(request('127.0.0.1', { 'x-forwarded-for': `${bad}, 10.0.0.5` })), '10.0.0.5', bad);
    }
  });

  it('falls back to X-Real-IP without X-Forwarded-For, and to the peer without either', () => {
    assert.equal(behindOneProxy.resolve(request('127.0.0.1', { 'x-real-ip': '203.0.113.3' })), '203.0.113.3');
    assert.equal(behindOneProxy.resolve(request('127.0.0.1', { 'x-real-ip': 'bogus' })), '127.0.0.1');
    assert.equal(behindOneProxy.resolve(request('127.0.0.1')), '127.0.0.1');
  });
});
