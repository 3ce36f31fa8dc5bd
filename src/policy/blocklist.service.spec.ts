import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { Logger } from '@nestjs/common';
import { ConfigError, parseConfig } from '../config/config.schema.js';
import { BlocklistService, DEFAULT_BLOCKED_TARGETS } from './blocklist.service.js';

// Policy tests only: nothing here opens a socket.

function blocklist(env: Record<string, string> = {}): BlocklistService {
  return new BlocklistService(parseConfig(env));
}

/** The IPv6 spellings that carry an IPv4 address `a.b.c.d`. */
function embeddings(v4: string): string[] {
  const [a, b, c, d] = v4.split('.').map(Number);
  const hi = ((a << 8) | b).toString(16);
  const lo = ((c << 8) | d).toString(16);
  return [
    `::ffff:${v4}`, // IPv4-mapped, dotted
    `::ffff:${hi}:${lo}`, // IPv4-mapped, hex
    `::ffff:0:${v4}`, // IPv4-translated (SIIT)
    `64:ff9b::${v4}`, // NAT64
    `64:ff9b::${hi}:${lo}`,
    `2002:${hi}:${lo}::1`, // 6to4
    `2002:${hi}:${lo}:abcd::`,
  ];
}

const DEFAULT_V4: [string, string[]][] = [
  ['0.0.0.0/8', ['0.0.0.0', '0.1.2.3', '0.255.255.255']],
  ['10.0.0.0/8', ['10.0.0.0', '10.1.2.3', '10.255.255.255']],
  ['100.64.0.0/10', ['100.64.0.0', '100.100.100.100', '100.127.255.255']],
  ['127.0.0.0/8', ['127.0.0.1', '127.0.0.2', '127.255.255.254']],
  ['169.254.0.0/16', ['169.254.0.1', '169.254.169.254']],
  ['172.16.0.0/12', ['172.16.0.1', '172.20.1.1', '172.31.255.255']],
  ['192.0.0.0/24', ['192.0.0.1', '192.0.0.255']],
  ['192.0.2.0/24', ['192.0.2.0', '192.0.2.77', '192.0.2.255']],
  ['192.168.0.0/16', ['192.168.0.1', '192.168.255.255']],
  ['198.51.100.0/24', ['198.51.100.0', '198.51.100.255']],
  ['203.0.113.0/24', ['203.0.113.0', '203.0.113.255']],
  ['198.18.0.0/15', ['198.18.0.1', '198.19.255.255']],
  ['224.0.0.0/4', ['224.0.0.1', '239.255.255.250']],
  ['240.0.0.0/4', ['240.0.0.1', '250.1.2.3', '255.255.255.255']],
];

const DEFAULT_V6: [string, string[]][] = [
  ['::/128', ['::', '0:0:0:0:0:0:0:0']],
  ['::1/128', ['::1', '0:0:0:0:0:0:0:1']],
  ['fc00::/7', ['fc00::1', 'fd12:3456:789a::1', 'fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']],
  ['fe80::/10', ['fe80::1', 'febf::1']],
  ['ff00::/8', ['ff02::1', 'ff05::1:3', 'ffff::1']],
  ['2001::/32', ['2001::1', '2001:0:4136:e378:8000:63bf:3fff:fdd2']],
  ['2001:2::/48', ['2001:2::1', '2001:2:0:ffff::1']],
  ['2001:10::/28', ['2001:10::1', '2001:1f::1']],
  ['2001:20::/28', ['2001:20::1', '2001:2f::1']],
  ['3fff::/20', ['3fff::1', '3fff:fff::1']],
  ['5f00::/16', ['5f00::1', '5f00:ffff::1']],
  ['64:ff9b:1::/48', ['64:ff9b:1::1', '64:ff9b:1:ffff:ffff:ffff:ffff:ffff']],
  ['100::/64', ['100::1', '100::ffff:ffff:ffff:ffff']],
  ['2001:db8::/32', ['2001:db8::1', '2001:db8:ffff::1']],
  ['fec0::/10', ['fec0::1', 'feff:ffff::1']],
];

const PUBLIC = ['8.8.8.8', '1.1.1.1', '9.9.9.9', '100.128.0.1', '172.32.0.1', '192.169.0.1', '2606:4700::1111', '2001:4860:4860::8888', '2001:3::1', '2001:4:112::1', '2001:30::1', '3fff:1000::1'];

describe('BlocklistService (default list)', () => {
  const bl = blocklist();

  for (const [range, samples] of DEFAULT_V4) {
    it(`blocks ${range} and its IPv4-mapped, NAT64 and 6to4 forms`, () => {
      for (const v4 of samples) {
        assert.equal(bl.isBlocked(v4), true, v4);
        for (const v6 of embeddings(v4)) assert.equal(bl.isBlocked(v6), true, `${v6} (carries ${v4})`);
      }
    });
  }

  for (const [range, samples] of DEFAULT_V6) {
    it(`blocks ${range}`, () => {
      for (const a of samples) assert.equal(bl.isBlocked(a), true, a);
    });
  }

  it('blocks the edges of each range but not the neighbours outside it', () => {
    for (const a of ['9.255.255.255', '11.0.0.0', '100.63.255.255', '100.128.0.0', '126.255.255.255', '128.0.0.0', '172.15.255.255', '172.32.0.0', '198.17.255.255', '198.20.0.0', '223.255.255.255']) {
      assert.equal(bl.isBlocked(a), false, a);
    }
  });

  it('lets public unicast addresses pass, also through mapped/NAT64/6to4 forms', () => {
    for (const a of PUBLIC) assert.equal(bl.isBlocked(a), false, a);
    for (const v4 of ['8.8.8.8', '1.1.1.1']) {
      for (const v6 of embeddings(v4)) assert.equal(bl.isBlocked(v6), false, v6);
    }
  });

  it('reads legacy IPv4 spellings and bracketed IPv6 as the address they denote', () => {
    for (const a of ['2130706433', '0x7f.1', '127.1', '0177.0.0.1', '0x7f000001', '[::1]', '[::ffff:127.0.0.1]', 'FE80::1']) {
      assert.equal(bl.isBlocked(a), true, a);
    }
    assert.equal(bl.isBlocked('134744072'), false, '134744072 = 8.8.8.8');
  });

  it('blocks IPv4-compatible IPv6 (::a.b.c.d) carrying a blocked address', () => {
    assert.equal(bl.isBlocked('::127.0.0.1'), true);
    assert.equal(bl.isBlocked('::10.0.0.1'), true);
  });

  it('fails closed on anything that is not an IP literal', () => {
    for (const a of ['', 'localhost', 'example.com', '1.2.3.4.5', '::1%lo', '[::1', '999.1.1.1']) {
      assert.equal(bl.isBlocked(a), true, JSON.stringify(a));
    }
  });

  it('exposes its ranges, the default list included', () => {
    for (const r of ['10.0.0.0/8', '127.0.0.0/8', 'fc00::/7', '::1/128']) assert.ok(bl.ranges.includes(r), r);
    assert.ok(DEFAULT_BLOCKED_TARGETS.length >= 16);
  });
});

describe('BlocklistService (user list)', () => {
  it('replaces the default list', () => {
    const bl = blocklist({ BLOCKED_TARGETS: '10.0.0.0/8,fd00::/8' });
    assert.equal(bl.isBlocked('10.9.8.7'), true);
    assert.equal(bl.isBlocked('fd00::5'), true);
    assert.equal(bl.isBlocked('127.0.0.1'), false);
    assert.equal(bl.isBlocked('192.168.1.1'), false);
    assert.equal(bl.isBlocked('::1'), false);
    assert.equal(bl.isBlocked('fe80::1'), false);
    assert.equal(bl.isBlocked('8.8.8.8'), false);
  });

  it('applies its IPv4 ranges to IPv4 carried in IPv6 addresses', () => {
    const bl = blocklist({ BLOCKED_TARGETS: '10.0.0.0/8' });
    for (const v6 of embeddings('10.1.2.3')) assert.equal(bl.isBlocked(v6), true, v6);
    for (const v6 of embeddings('11.1.2.3')) assert.equal(bl.isBlocked(v6), false, v6);
  });

  it('treats a bare address as a single host', () => {
    const bl = blocklist({ BLOCKED_TARGETS: '203.0.113.7,2001:db8::1' });
    assert.equal(bl.isBlocked('203.0.113.7'), true);
    assert.equal(bl.isBlocked('203.0.113.8'), false);
    assert.equal(bl.isBlocked('2001:db8::1'), true);
    assert.equal(bl.isBlocked('2001:db8::2'), false);
  });

  it('reads an IPv4-mapped IPv6 CIDR as the IPv4 range too', () => {
    const bl = blocklist({ BLOCKED_TARGETS: '::ffff:10.0.0.0/104' });
    assert.equal(bl.isBlocked('10.1.1.1'), true);
    assert.equal(bl.isBlocked('::ffff:10.1.1.1'), true);
    assert.equal(bl.isBlocked('11.1.1.1'), false);
  });

  it('reads the whole IPv4-mapped block (::ffff:0:0/96) as every IPv4 address', () => {
    // Its IPv4 range is 0.0.0.0/0: the edge case of the /96..128 mapped prefixes.
    const bl = blocklist({ BLOCKED_TARGETS: '::ffff:0:0/96' });
    for (const ip of ['8.8.8.8', '1.1.1.1', '0.0.0.0', '255.255.255.255', '::ffff:8.8.8.8']) assert.equal(bl.isBlocked(ip), true, ip);
    assert.equal(bl.isBlocked('2606:4700::1111'), false);
  });

  it('refuses legacy IPv4 spellings in CIDRs at construction (10/8 would mean 0.0.0.10/8)', () => {
    assert.throws(() => blocklist({ BLOCKED_TARGETS: '10/8' }), (err: unknown) => err instanceof ConfigError && err.variable === 'BLOCKED_TARGETS');
  });
});

describe('BlocklistService (none)', () => {
  it('blocks nothing and logs one warning at startup', () => {
    const warn = mock.method(Logger.prototype, 'warn', () => undefined);
    try {
      const bl = blocklist({ BLOCKED_TARGETS: 'none' });
      assert.equal(warn.mock.callCount(), 1);
      assert.match(String(warn.mock.calls[0].arguments[0]), /BLOCKED_TARGETS=none/);
      for (const a of ['127.0.0.1', '10.0.0.1', '::1', '::ffff:127.0.0.1', '169.254.169.254', '8.8.8.8']) {
        assert.equal(bl.isBlocked(a), false, a);
      }
      assert.equal(bl.isBlocked('10.0.0.2'), false);
      assert.equal(warn.mock.callCount(), 1, 'no warning per check');
    } finally {
      warn.mock.restore();
    }
  });

  it('the default list does not warn', () => {
    const warn = mock.method(Logger.prototype, 'warn', () => undefined);
    try {
      blocklist();
      assert.equal(warn.mock.callCount(), 0);
    } finally {
      warn.mock.restore();
    }
  });
});
