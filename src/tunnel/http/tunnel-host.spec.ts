import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { matchTunnelHost } from './tunnel-host.js';

const D = 'tunnel.example.com';
const SUB = '3f9c2a7b1d0e4c55';

describe('matchTunnelHost', () => {
  it('matches one 16-hex label case-insensitively, ignoring a port and one trailing dot', () => {
    for (const host of [`${SUB}.${D}`, `${SUB.toUpperCase()}.TUNNEL.Example.COM`, `${SUB}.${D}.`, `${SUB}.${D}:443`, `${SUB}.${D}.:8080`, `${SUB}.${D}:65535`]) {
      assert.deepEqual(matchTunnelHost(host, D), { kind: 'tunnel', subdomain: SUB }, host);
    }
  });

  it('claims every other name under the domain as invalid', () => {
    for (const host of [`x.${SUB}.${D}`, `${SUB.slice(1)}.${D}`, `${SUB}0.${D}`, `g${SUB.slice(1)}.${D}`, `.${D}`, `${SUB}.${D}:abc`, `${SUB}.${D}:99999`, `${SUB}.${D}:65536`, `a.b.${D}`]) {
      assert.deepEqual(matchTunnelHost(host, D), { kind: 'invalid' }, host);
    }
  });

  it('leaves other hosts, the apex and look-alikes to the app', () => {
    for (const host of [undefined, '', D, `${D}.`, `${SUB}.${D}.evil.com`, `${SUB}.${D}..`, `${SUB}x${D}`, 'proxy.example.com', '127.0.0.1:8080', '[::1]:8080', `${SUB}.example.com`]) {
      assert.deepEqual(matchTunnelHost(host, D), { kind: 'other' }, String(host));
    }
  });

  it('matches nothing without a tunnel domain', () => {
    assert.deepEqual(matchTunnelHost(`${SUB}.${D}`, ''), { kind: 'other' });
  });
});
