import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseHost, parsePort } from './host.js';

describe('parseHost', () => {
  const ip = (address: string) => ({ kind: 'ip', address });
  const name = (n: string) => ({ kind: 'name', name: n });

  it('reads dotted-quad IPv4', () => {
    assert.deepEqual(parseHost('8.8.8.8'), ip('8.8.8.8'));
    assert.deepEqual(parseHost('127.0.0.2'), ip('127.0.0.2'));
  });

  it('recognises legacy IPv4 spellings as the address they denote', () => {
    for (const s of ['2130706433', '0x7f.1', '0X7F.1', '127.1', '0177.0.0.1', '0x7f000001', '0x7f.0.0.1', '127.0.1', '127.0.0.1.', '017700000001']) {
      assert.deepEqual(parseHost(s), ip('127.0.0.1'), s);
    }
  });

  it('reads IPv6 with or without brackets, canonically', () => {
    assert.deepEqual(parseHost('::1'), ip('::1'));
    assert.deepEqual(parseHost('[::1]'), ip('::1'));
    assert.deepEqual(parseHost('[2606:4700:0:0:0:0:0:1111]'), ip('2606:4700::1111'));
    assert.deepEqual(parseHost('2001:DB8::A'), ip('2001:db8::a'));
  });

  it('turns IPv4-mapped IPv6 into the IPv4 address it reaches', () => {
    assert.deepEqual(parseHost('::ffff:127.0.0.1'), ip('127.0.0.1'));
    assert.deepEqual(parseHost('[::ffff:7f00:1]'), ip('127.0.0.1'));
  });

  it('keeps IPv4-compatible, NAT64 and 6to4 addresses as IPv6 (the blocklist looks inside)', () => {
    assert.deepEqual(parseHost('::127.0.0.1'), ip('::7f00:1'));
    assert.deepEqual(parseHost('64:ff9b::127.0.0.1'), ip('64:ff9b::7f00:1'));
    assert.deepEqual(parseHost('2002:7f00:1::1'), ip('2002:7f00:1::1'));
  });

  it('reads host names, lower-cased', () => {
    assert.deepEqual(parseHost('localhost'), name('localhost'));
    assert.deepEqual(parseHost('Example.COM'), name('example.com'));
    assert.deepEqual(parseHost('a-b.c1.example.com.'), name('a-b.c1.example.com.'));
    assert.deepEqual(parseHost('1password.com'), name('1password.com'));
    assert.deepEqual(parseHost('x'.repeat(63) + '.com'), name('x'.repeat(63) + '.com'));
  });

  it('accepts a 253-character name and refuses a 254-character one', () => {
    const label = 'a'.repeat(49);
    const n253 = [label, label, label, label, label].join('.') + '.abc'; // 5*49+4 + 4 = 253
    assert.equal(n253.length, 253);
    assert.deepEqual(parseHost(n253), name(n253));
    assert.equal(parseHost('a' + n253), null);
  });

  for (const bad of [
    '',
    ' ',
    'exa mple.com',
    'example..com',
    '.example.com',
    '-example.com',
    'example-.com',
    'ex_ample.com',
    'x'.repeat(64) + '.com',
    'example.com:22',
    'user@example.com',
    'example.com/path',
    '1.2.3.4.5',
    '256.1.1.1',
    '08.0.0.1',
    'example.123',
    'foo.0x',
    '[127.0.0.1]',
    '[example.com]',
    '[::1',
    '::1]',
    '::1%lo',
    'fe80::1%25eth0',
    ':::1',
    '1::2::3',
    '127.0.0.1:22',
    'é.example',
  ]) {
    it(`refuses ${JSON.stringify(bad)}`, () => assert.equal(parseHost(bad), null));
  }

  it('refuses non-strings', () => {
    assert.equal(parseHost(undefined), null);
    assert.equal(parseHost(null), null);
  });
});

describe('parsePort', () => {
  it('reads 1..65535 written in digits', () => {
    assert.equal(parsePort('1'), 1);
    assert.equal(parsePort('22'), 22);
    assert.equal(parsePort('65535'), 65535);
  });

  for (const bad of ['', '0', '022', '0022', '00', '65536', '99999', '-1', '+22', '22.0', '0x16', ' 22', '22 ', '1e3', '123456', 'ssh']) {
    it(`refuses ${JSON.stringify(bad)}`, () => assert.equal(parsePort(bad), null));
  }

  it('refuses a missing port', () => assert.equal(parsePort(undefined), null));
});
