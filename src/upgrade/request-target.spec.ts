import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { adoptTargetAuthority, hostLines, isValidHostValue, parseRequestTarget } from './request-target.js';

/** The path and what `get` answers for `names` (null when absent). */
const parsed = (t: string | undefined, names: string[]): [string, Record<string, string | null>] | null => {
  const r = parseRequestTarget(t);
  return r ? [r.path, Object.fromEntries(names.map((n) => [n, r.query.get(n)]))] : null;
};

describe('parseRequestTarget', () => {
  it('splits a plain origin-form target into path and decoded query', () => {
    assert.deepEqual(parsed('/relay?host=127.0.0.1&port=22&token=a.b.c&x=%41+b', ['host', 'port', 'token', 'x', 'y']), [
      '/relay',
      { host: '127.0.0.1', port: '22', token: 'a.b.c', x: 'A b', y: null },
    ]);
    assert.deepEqual(parsed('/relay?host=127.0.0.1&port=22&token=a.b-_c', ['host', 'port', 'token']), [
      '/relay',
      { host: '127.0.0.1', port: '22', token: 'a.b-_c' },
    ]);
    assert.deepEqual(parsed('/tunnel', ['v']), ['/tunnel', { v: null }]);
    assert.deepEqual(parsed(undefined, ['v']), ['/', { v: null }]);
  });

  it('gives anything else to the URL parser, as the router always did', () => {
    assert.deepEqual(parsed('/a/../relay?v=2', ['v']), ['/relay', { v: '2' }]);
    assert.deepEqual(parsed('/%72elay?v=2', ['v']), ['/%72elay', { v: '2' }], 'percent-encoding is not decoded into a route');
    assert.deepEqual(parsed('http://example.com/relay?v=1', ['v']), ['/relay', { v: '1' }]);
    assert.deepEqual(parsed('/relay?v=1#frag=2', ['v', 'frag']), ['/relay', { v: '1', frag: null }], 'a fragment is not part of the query');
    assert.equal(parsed('http://[::1/relay', []), null);
  });

  it('reads an origin-form target that starts with // as the path it is, not as a URL naming a host', () => {
    assert.deepEqual(parsed('//evil.example/relay?v=1', ['v']), ['//evil.example/relay', { v: '1' }]);
    assert.deepEqual(parsed('//evil.example:1/./relay', []), ['//evil.example:1/relay', {}]);
  });
});

describe('hostLines', () => {
  it('counts Host lines in any case, and only Host, up to two', () => {
    assert.equal(hostLines(['Host', 'a', 'Accept', '*/*']), 1);
    assert.equal(hostLines(['Host', 'a', 'host', 'b']), 2);
    assert.equal(hostLines(['HOST', 'a', 'X', 'y', 'hOsT', 'a', 'host', 'c']), 2);
    assert.equal(hostLines(['Hosts', 'a', 'Host', 'b', 'X-Host', 'c']), 1);
    assert.equal(hostLines(['Hosts', 'a', 'X-Host', 'c']), 0);
    assert.equal(hostLines([]), 0);
  });
});

describe('isValidHostValue', () => {
  it('takes a reg-name, an IPv4 address or a bracketed IPv6 literal, each with an optional port up to 65535', () => {
    for (const v of ['example.com', 'a.b-c_d~e', '127.0.0.1:8080', '[::1]', '[::1]:443', '[v1.x]', 'xn--bcher-kva.example', 'a%41b', 'h:', '', 'h:65535', 'h:0', '[fe80::1%25eth0]:80']) {
      assert.equal(isValidHostValue(v), true, v);
    }
  });

  it('refuses what RFC 9112 §3.2 calls an invalid field value', () => {
    for (const v of ['a b', 'u@a', 'a/b?c', 'a:999999', 'a:65536', 'a:b', '[::1', '::1', 'a:1:2', 'a#b', 'a"b', 'a\\b', '[::1]x']) {
      assert.equal(isValidHostValue(v), false, v);
    }
  });

  it('takes only an IPv6 address (with a %25 zone id) or IPvFuture between brackets (RFC 3986 §3.2.2, RFC 6874)', () => {
    for (const v of ['[0:0:0:0:0:0:0:1]', '[::ffff:1.2.3.4]:80', '[fe80::1%25en0]', '[fe80::1%25%41]', '[V1F.a:b]']) {
      assert.equal(isValidHostValue(v), true, v);
    }
    for (const v of ['[example.com]', '[0123456789abcdef.tunnel.test]', '[1.2.3.4]', '[zz]:80', '[::1::2]', '[fe80::1%eth0]', '[fe80::1%25]', '[v1.]', '[]']) {
      assert.equal(isValidHostValue(v), false, v);
    }
  });
});

describe('adoptTargetAuthority', () => {
  const request = (url: string, host = 'front.test'): IncomingMessage => ({ url, headers: { host }, rawHeaders: ['Host', host] }) as unknown as IncomingMessage;

  it("takes an absolute-form target's authority as the Host, in headers and raw headers", () => {
    const req = request('http://0123456789abcdef.tunnel.test:8080/p?q');
    assert.equal(adoptTargetAuthority(req), true);
    assert.equal(req.headers.host, '0123456789abcdef.tunnel.test:8080');
    assert.deepEqual(req.rawHeaders, ['Host', '0123456789abcdef.tunnel.test:8080']);
  });

  it('refuses a target with userinfo instead of routing by what follows the @ (RFC 9110 §4.2.4), leaving Host alone', () => {
    for (const url of [
      'http://0123456789abcdef.tunnel.test@fedcba9876543210.tunnel.test/',
      'https://u:p@example.com/x',
      'http://@example.com/',
      'HTTP://a%40b@example.com',
      // Extra slashes, which the URL parser skips before the authority (Node's parser accepts such a target).
      'http:///0123456789abcdef.tunnel.test@fedcba9876543210.tunnel.test/',
      'http:////u:p@example.com/x',
      'http:///@example.com/',
    ]) {
      const req = request(url);
      assert.equal(adoptTargetAuthority(req), false, url);
      assert.equal(req.headers.host, 'front.test', url);
    }
    // An @ after the authority is part of the path or query.
    for (const url of ['http://example.com/a@b', 'http://example.com?to=a@b', 'http://example.com:80/@']) {
      assert.equal(adoptTargetAuthority(request(url)), true, url);
    }
  });

  it('refuses a target with an empty authority (RFC 9110 §4.2.1) instead of routing by its first path segment', () => {
    for (const url of ['http:///0123456789abcdef.tunnel.test/', 'HTTPS:///example.com/x', 'http:////example.com', 'http:///example.com/a@b']) {
      const req = request(url);
      assert.equal(adoptTargetAuthority(req), false, url);
      assert.equal(req.headers.host, 'front.test', url);
    }
  });
});
