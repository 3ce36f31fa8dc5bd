import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, parseConfig } from '../config/config.schema.js';
import { matches, parseAllowedTargets } from './allowed-targets.js';

// Policy tests only: nothing here opens a socket.

describe('parseAllowedTargets', () => {
  it('reads CIDR, CIDR:port and CIDR:lo-hi, IPv6 bracketed or bare without port', () => {
    const list = parseAllowedTargets(' 0.0.0.0/0:22 , 10.0.0.0/8 ,192.0.2.0/24:8000-8100,[::/0]:22,[2001:db8::/32]:80-81,2001:db8:1::/48,[fd00::/8],198.51.100.7:443,[2001:db8::1]:2222');
    assert.deepEqual(
      list.map((t) => [t.text, t.portLo, t.portHi]),
      [
        ['0.0.0.0/0:22', 22, 22],
        ['10.0.0.0/8', 1, 65535],
        ['192.0.2.0/24:8000-8100', 8000, 8100],
        ['[::/0]:22', 22, 22],
        ['[2001:db8::/32]:80-81', 80, 81],
        ['2001:db8:1::/48', 1, 65535],
        ['fd00::/8', 1, 65535],
        ['198.51.100.7/32:443', 443, 443],
        ['[2001:db8::1/128]:2222', 2222, 2222],
      ],
    );
  });

  it('is an empty list when empty, and refuses a blank value or commas without an entry (read as empty, it would allow every target)', () => {
    assert.deepEqual(parseAllowedTargets(''), []);
    assert.throws(() => parseAllowedTargets('  '), /ALLOWED_TARGETS is " {2}", a list without entries/);
    assert.throws(() => parseAllowedTargets(' , '), /ALLOWED_TARGETS is " , ", a list without entries/);
  });

  it('clears host bits of a CIDR', () => {
    assert.equal(parseAllowedTargets('10.1.2.3/8:22')[0].text, '10.0.0.0/8:22');
  });

  for (const bad of [
    'example.com',
    '10/8',
    '10.0.0.0/33',
    '10.0.0.0/8:0',
    '10.0.0.0/8:65536',
    '10.0.0.0/8:22-21',
    '10.0.0.0/8:ssh',
    '10.0.0.0/8:22-',
    '10.0.0.0/8:-22',
    '10.0.0.0/8:+22',
    '2001:db8::/32:22',
    '[2001:db8::/32',
    '[2001:db8::/32]22',
    '[10.0.0.0/8]:22',
    '[::/129]:22',
    '::1%lo',
  ]) {
    it(`throws ConfigError on ${JSON.stringify(bad)}`, () => {
      assert.throws(
        () => parseAllowedTargets(`0.0.0.0/0:22,${bad}`),
        (err: unknown) => err instanceof ConfigError && err.variable === 'ALLOWED_TARGETS' && err.message.includes(bad),
      );
    });
  }

  it('is what the config schema uses for ALLOWED_TARGETS', () => {
    assert.deepEqual(parseConfig({}).allowedTargets, []);
    const cfg = parseConfig({ ALLOWED_TARGETS: '0.0.0.0/0:22,[::/0]:22' });
    assert.deepEqual(cfg.allowedTargets.map((t) => t.text), ['0.0.0.0/0:22', '[::/0]:22']);
    assert.throws(() => parseConfig({ ALLOWED_TARGETS: '0.0.0.0/0:99999' }), ConfigError);
  });
});

describe('matches', () => {
  const list = parseAllowedTargets('0.0.0.0/0:22,192.0.2.0/24:8000-8100,[2001:db8::/32]:443,2001:db8:1::/48');

  it('matches address and port ranges, inclusive', () => {
    assert.equal(matches(list, '8.8.8.8', 22), true);
    assert.equal(matches(list, '8.8.8.8', 23), false);
    assert.equal(matches(list, '192.0.2.9', 8000), true);
    assert.equal(matches(list, '192.0.2.9', 8100), true);
    assert.equal(matches(list, '192.0.2.9', 8101), false);
    assert.equal(matches(list, '192.0.3.9', 8050), false);
  });

  it('matches IPv6 entries, with and without ports', () => {
    assert.equal(matches(list, '2001:db8::5', 443), true);
    assert.equal(matches(list, '2001:db8::5', 22), false, 'IPv4 0.0.0.0/0 does not cover IPv6');
    assert.equal(matches(list, '[2001:db8::5]', 443), true);
    assert.equal(matches(list, '2001:db8:1::9', 1), true);
    assert.equal(matches(list, '2001:db8:1::9', 65535), true);
    assert.equal(matches(list, '2001:db9::1', 443), false);
  });

  it('matches IPv4-mapped IPv6 as its IPv4 address, and legacy IPv4 spellings', () => {
    assert.equal(matches(list, '::ffff:8.8.8.8', 22), true);
    assert.equal(matches(list, '::ffff:192.0.2.1', 8080), true);
    assert.equal(matches(list, '134744072', 22), true);
  });

  it('does not let NAT64 or 6to4 forms match IPv4 entries', () => {
    assert.equal(matches(list, '64:ff9b::808:808', 22), false);
    assert.equal(matches(list, '2002:808:808::1', 22), false);
  });

  it('never matches a non-address', () => {
    assert.equal(matches(list, 'example.com', 22), false);
    assert.equal(matches(list, '', 22), false);
  });

  it('an IPv4-mapped CIDR entry also admits the IPv4 range', () => {
    const mapped = parseAllowedTargets('[::ffff:10.0.0.0/104]:22');
    assert.equal(matches(mapped, '10.2.3.4', 22), true);
    assert.equal(matches(mapped, '10.2.3.4', 23), false);
  });
});
