import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cidrContains, embeddedIPv4, parseCidr, parseIpLiteral, toWords } from './ip.js';

describe('ip helpers', () => {
  it('reads ::a.b.c.d as IPv4-compatible, not IPv4-mapped (ipaddr.js alone gets this wrong)', () => {
    assert.equal(parseIpLiteral('::1.2.3.4')?.toString(), '::102:304');
    assert.equal(parseIpLiteral('::ffff:1.2.3.4')?.toString(), '::ffff:102:304');
  });

  it('refuses zones, brackets and whitespace', () => {
    for (const s of ['fe80::1%eth0', '[::1]', ' 1.2.3.4', '1.2.3.4 ', '']) assert.equal(parseIpLiteral(s), null, JSON.stringify(s));
  });

  it('parses CIDRs strictly and clears host bits', () => {
    assert.equal(parseCidr('10.1.2.3/8').text, '10.0.0.0/8');
    assert.equal(parseCidr('fe80::1/10').text, 'fe80::/10');
    assert.equal(parseCidr('::1').text, '::1/128');
    assert.equal(parseCidr('0.0.0.0/0').text, '0.0.0.0/0');
    for (const bad of ['10/8', '127.1/8', '10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/a', 'x']) {
      assert.throws(() => parseCidr(bad), Error, bad);
    }
  });

  it('checks containment across word boundaries', () => {
    const c = parseCidr('2001:db8:abcd:12::/63');
    assert.equal(cidrContains(c, toWords(parseIpLiteral('2001:db8:abcd:13::1')!)), true);
    assert.equal(cidrContains(c, toWords(parseIpLiteral('2001:db8:abcd:14::1')!)), false);
    assert.equal(cidrContains(parseCidr('::/0'), toWords(parseIpLiteral('ffff::1')!)), true);
    assert.equal(cidrContains(parseCidr('::/0'), toWords(parseIpLiteral('1.2.3.4')!)), false, 'families never mix');
  });

  it('extracts IPv4 from mapped, compatible, NAT64 and 6to4 addresses only', () => {
    const v4 = (s: string) => {
      const w = embeddedIPv4(toWords(parseIpLiteral(s)!));
      return w === null ? null : [w >>> 24, (w >>> 16) & 255, (w >>> 8) & 255, w & 255].join('.');
    };
    assert.equal(v4('::ffff:10.1.2.3'), '10.1.2.3');
    assert.equal(v4('::10.1.2.3'), '10.1.2.3');
    assert.equal(v4('::ffff:0:10.1.2.3'), '10.1.2.3');
    assert.equal(v4('::ffff:0:a01:203'), '10.1.2.3');
    assert.equal(v4('64:ff9b::10.1.2.3'), '10.1.2.3');
    assert.equal(v4('2002:a01:203::'), '10.1.2.3');
    assert.equal(v4('2606:4700::1111'), null);
    assert.equal(v4('64:ff9b:1::a01:203'), null);
    assert.equal(v4('1.2.3.4'), null);
  });
});
