import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OriginPolicy, isOriginEntry } from './origin-policy.js';

describe('OriginPolicy', () => {
  it('matches a wildcard entry written with its scheme\'s default port (browsers leave :443 and :80 out of Origin)', () => {
    const policy = new OriginPolicy(['https://*.example.com:443', 'http://*.example.org:80']);
    assert.equal(policy.allows('https://app.example.com'), true);
    assert.equal(policy.allows('http://app.example.org'), true);
    assert.equal(policy.allows('https://app.example.com:8443'), false);
    assert.equal(policy.allows('http://app.example.com'), false);
  });

  it('keeps a non-default port in a wildcard entry', () => {
    const policy = new OriginPolicy(['https://*.example.com:8443']);
    assert.equal(policy.allows('https://app.example.com:8443'), true);
    assert.equal(policy.allows('https://app.example.com'), false);
  });

  it('allows an exact entry with its default port, and a request without Origin', () => {
    const policy = new OriginPolicy(['https://app.example.com:443']);
    assert.equal(policy.allows('https://app.example.com'), true);
    assert.equal(policy.allows(undefined), true);
    assert.equal(policy.allows('https://evil.example.com'), false);
  });

  it('matches a wildcard on whole labels only: not a look-alike host, not the bare suffix', () => {
    const policy = new OriginPolicy(['https://*.example.com']);
    assert.equal(policy.allows('https://a.b.example.com'), true);
    assert.equal(policy.allows('https://app.example.com.evil.net'), false);
    assert.equal(policy.allows('https://appexample.com'), false);
    assert.equal(policy.allows('https://example.com'), false);
    assert.equal(policy.allows('https://.example.com'), false);
  });

  it('compares an exact entry with the origin as a browser would write it (case, default port)', () => {
    const policy = new OriginPolicy(['https://app.example.com']);
    assert.equal(policy.allows('https://APP.Example.com'), true);
    assert.equal(policy.allows('https://app.example.com:443'), true);
    assert.equal(policy.allows('https://app.example.com:8443'), false);
  });

  it('matches a wildcard entry with a non-ASCII name as browsers write the origin (punycode)', () => {
    const policy = new OriginPolicy(['https://*.bücher.example']);
    assert.equal(policy.allows('https://shop.xn--bcher-kva.example'), true);
    assert.equal(policy.allows('https://shop.other.example'), false);
  });

  it('takes an IPv6-literal origin, exact or with any port, and refuses an entry with whitespace or a broken literal', () => {
    assert.equal(isOriginEntry('https://[::1]:8080'), true);
    assert.equal(isOriginEntry('http://[2001:db8::1]:*'), true);
    for (const bad of ['https://exa mple.com', 'https://[::1', 'https://::1', 'https://a\tb.example']) assert.equal(isOriginEntry(bad), false, bad);
    const exact = new OriginPolicy(['https://[::1]:8080']);
    assert.equal(exact.allows('https://[::1]:8080'), true);
    assert.equal(exact.allows('https://[::1]:8081'), false);
    const anyPort = new OriginPolicy(['http://[::1]:*']);
    assert.equal(anyPort.allows('http://[::1]:3000'), true);
    assert.equal(anyPort.allows('http://[::2]:3000'), false);
    // Written in any IPv6 form, compared as a browser writes it.
    assert.equal(new OriginPolicy(['http://[0:0::1]:*']).allows('http://[::1]:3000'), true);
    assert.equal(new OriginPolicy(['http://LOCALHOST:*']).allows('http://localhost:3000'), true);
  });
});
