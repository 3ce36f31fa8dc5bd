import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigModule, registerAs } from '@nestjs/config';
import { Test } from '@nestjs/testing';
import { Refusal } from '../common/refusal.js';
import { parseConfig } from '../config/config.schema.js';
import { BlocklistService } from './blocklist.service.js';
import { PolicyModule } from './policy.module.js';
import { TargetResolver } from './resolver.js';
import { TargetPolicyService } from './target-policy.service.js';

// Policy tests only: names resolve through a stub and nothing is dialled.

type Lookup = (name: string) => Promise<string[]>;

function stubResolver(table: Record<string, string[]> | Lookup): TargetResolver & { calls: string[] } {
  const calls: string[] = [];
  const lookup: Lookup =
    typeof table === 'function'
      ? table
      : async (name) => {
          const found = table[name];
          if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
          return found;
        };
  return {
    calls,
    lookup: (name: string) => {
      calls.push(name);
      return lookup(name);
    },
  } as TargetResolver & { calls: string[] };
}

function policy(env: Record<string, string>, resolver: TargetResolver, blocklist?: BlocklistService): TargetPolicyService {
  const config = parseConfig(env);
  return new TargetPolicyService(config, blocklist ?? new BlocklistService(config), resolver);
}

/** A blocklist that counts the addresses it is asked about. */
function countingBlocklist(): BlocklistService & { checks: number } {
  const b = new BlocklistService(parseConfig({})) as BlocklistService & { checks: number };
  b.checks = 0;
  const isBlocked = b.isBlocked.bind(b);
  b.isBlocked = (address: string) => {
    b.checks++;
    return isBlocked(address);
  };
  return b;
}

async function waitUntil(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((r) => setImmediate(r));
}

async function refusal(p: Promise<unknown>): Promise<Refusal> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof Refusal, `expected a Refusal, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a refusal');
}

/** The client every request here comes from. */
const CLIENT = '192.0.2.7';

const DNS = {
  'public.example': ['8.8.8.8'],
  'dual.example': ['2606:4700::1111', '1.1.1.1'],
  'rebind.example': ['8.8.8.8', '10.0.0.5'],
  'rebind6.example': ['2606:4700::1111', '::ffff:127.0.0.1'],
  'mapped.example': ['::ffff:8.8.8.8'],
  'localhost': ['::1', '127.0.0.1'],
  'empty.example': [],
  'garbage.example': ['not-an-ip'],
};

describe('TargetPolicyService', () => {
  it('resolves a public name once and returns the checked address', async () => {
    const r = stubResolver(DNS);
    const p = policy({}, r);
    assert.deepEqual(await p.resolveTarget('public.example', 22, CLIENT), { address: '8.8.8.8', family: 4, port: 22 });
    assert.deepEqual(await p.resolveTarget('dual.example', 443, CLIENT), { address: '2606:4700::1111', family: 6, port: 443 });
    assert.deepEqual(r.calls, ['public.example', 'dual.example']);
  });

  it('does not resolve IP literals', async () => {
    const r = stubResolver(DNS);
    const p = policy({}, r);
    assert.deepEqual(await p.resolveTarget('1.1.1.1', 22, CLIENT), { address: '1.1.1.1', family: 4, port: 22 });
    assert.deepEqual(await p.resolveTarget('[2606:4700::1111]', 22, CLIENT), { address: '2606:4700::1111', family: 6, port: 22 });
    assert.deepEqual(await p.resolveTarget('134744072', 22, CLIENT), { address: '8.8.8.8', family: 4, port: 22 });
    assert.deepEqual(r.calls, []);
  });

  it('returns IPv4-mapped answers as the IPv4 address they reach', async () => {
    const p = policy({}, stubResolver(DNS));
    assert.deepEqual(await p.resolveTarget('mapped.example', 22, CLIENT), { address: '8.8.8.8', family: 4, port: 22 });
    assert.deepEqual(await p.resolveTarget('::ffff:8.8.8.8', 22, CLIENT), { address: '8.8.8.8', family: 4, port: 22 });
  });

  it('refuses every loopback spelling with 403 target blocked', async () => {
    const p = policy({}, stubResolver(DNS));
    for (const host of ['127.0.0.1', '127.0.0.2', '2130706433', '0x7f.1', '127.1', '0177.0.0.1', '[::1]', '::1', '::ffff:127.0.0.1', 'localhost', '64:ff9b::7f00:1', '2002:7f00:1::1']) {
      const r = await refusal(p.resolveTarget(host, 22, CLIENT));
      assert.deepEqual([r.status, r.reason, r.kind], [403, 'target blocked', 'blocked'], host);
    }
  });

  it('refuses private, link-local and metadata addresses without dialling', async () => {
    const p = policy({}, stubResolver(DNS));
    for (const host of ['10.0.0.1', '192.168.1.1', '172.16.0.1', '169.254.169.254', '100.64.0.1', 'fd00::1', 'fe80::1', '0.0.0.0', '255.255.255.255']) {
      assert.equal((await refusal(p.resolveTarget(host, 22, CLIENT))).status, 403, host);
    }
  });

  it('refuses a name if any address it resolves to is blocked (DNS rebinding)', async () => {
    const p = policy({}, stubResolver(DNS));
    for (const host of ['rebind.example', 'rebind6.example']) {
      const r = await refusal(p.resolveTarget(host, 22, CLIENT));
      assert.deepEqual([r.status, r.reason, r.kind], [403, 'target blocked', 'blocked'], host);
    }
  });

  it('answers 400 invalid host for a malformed host, before any lookup', async () => {
    const r = stubResolver(DNS);
    const p = policy({}, r);
    for (const host of ['', 'bad host', '1.2.3.4.5', '[127.0.0.1]', 'a..b']) {
      const refused = await refusal(p.resolveTarget(host, 22, CLIENT));
      assert.deepEqual([refused.status, refused.reason, refused.kind], [400, 'invalid host', 'bad_request'], host);
    }
    assert.deepEqual(r.calls, []);
  });

  it('answers 400 for a port outside 1..65535', async () => {
    const p = policy({}, stubResolver(DNS));
    for (const port of [0, 65536, -1, 22.5, Number.NaN]) {
      assert.equal((await refusal(p.resolveTarget('8.8.8.8', port, CLIENT))).status, 400, String(port));
    }
  });

  it('answers 502 when the name does not resolve, or resolves to nothing', async () => {
    const p = policy({}, stubResolver(DNS));
    for (const host of ['nx.example', 'empty.example']) {
      const r = await refusal(p.resolveTarget(host, 22, CLIENT));
      assert.deepEqual([r.status, r.reason, r.kind], [502, 'name resolution failed', 'dial'], host);
    }
  });

  it('answers 504 when resolution takes longer than DNS_TIMEOUT_MS', async () => {
    const p = policy({ DNS_TIMEOUT_MS: '100' }, stubResolver(() => new Promise(() => undefined)));
    const r = await refusal(p.resolveTarget('slow.example', 22, CLIENT));
    assert.deepEqual([r.status, r.reason, r.kind], [504, 'name resolution timed out', 'dial']);
  });

  describe('name lookups in flight', () => {
    /** A resolver whose lookups settle when the test says so. */
    function heldResolver(): TargetResolver & { calls: string[]; answer(name: string): void } {
      const waiting = new Map<string, () => void>();
      const r = stubResolver((name) => new Promise<string[]>((resolve) => waiting.set(name, () => resolve(['8.8.8.8']))));
      return Object.assign(r, { answer: (name: string) => waiting.get(name)!() });
    }

    it('counts a lookup past DNS_TIMEOUT_MS until it settles, and refuses a client at DNS_MAX_LOOKUPS_PER_IP with 429', async () => {
      const r = heldResolver();
      const p = policy({ DNS_TIMEOUT_MS: '100', DNS_MAX_LOOKUPS_PER_IP: '2' }, r);
      for (const name of ['a.example', 'b.example']) assert.equal((await refusal(p.resolveTarget(name, 22, CLIENT))).status, 504);
      assert.equal(p.lookupsInFlight(CLIENT), 2, 'both still hold a resolver thread');
      const over = await refusal(p.resolveTarget('c.example', 22, CLIENT));
      assert.deepEqual([over.status, over.reason, over.kind], [429, 'too many name lookups from this IP', 'limit']);
      assert.deepEqual(r.calls, ['a.example', 'b.example'], 'no lookup started for the refused one');
      assert.equal((await refusal(p.resolveTarget('d.example', 22, '192.0.2.8'))).status, 504, 'another client still gets a lookup');
      assert.deepEqual(r.calls, ['a.example', 'b.example', 'd.example']);
      r.answer('a.example');
      await waitUntil(() => p.lookupsInFlight(CLIENT) === 1);
      p.resolveTarget('c.example', 22, CLIENT).catch(() => undefined);
      assert.equal(r.calls.at(-1), 'c.example', 'a settled lookup frees its place');
    });

    it('counts an IPv6 client by its IPV6_LIMIT_PREFIX', async () => {
      const p = policy({ DNS_MAX_LOOKUPS_PER_IP: '1' }, heldResolver());
      p.resolveTarget('a.example', 22, '2001:db8:1:2::1').catch(() => undefined);
      const r = await refusal(p.resolveTarget('b.example', 22, '2001:db8:1:2::2'));
      assert.equal(r.status, 429);
    });

    it('refuses beyond DNS_MAX_LOOKUPS in all with 503, other clients too', async () => {
      const p = policy({ DNS_MAX_LOOKUPS: '2', DNS_MAX_LOOKUPS_PER_IP: '2' }, heldResolver());
      p.resolveTarget('a.example', 22, '192.0.2.1').catch(() => undefined);
      p.resolveTarget('b.example', 22, '192.0.2.2').catch(() => undefined);
      const r = await refusal(p.resolveTarget('c.example', 22, '192.0.2.3'));
      assert.deepEqual([r.status, r.reason, r.kind], [503, 'too many name lookups in progress', 'capacity']);
    });

    it('shares one lookup among concurrent requests for a name, from any client, without counting them again', async () => {
      const r = heldResolver();
      const p = policy({ DNS_MAX_LOOKUPS_PER_IP: '1' }, r);
      const all = ['192.0.2.1', '192.0.2.1', '192.0.2.2', '192.0.2.3'].map((ip) => p.resolveTarget('public.example', 22, ip));
      assert.deepEqual(r.calls, ['public.example']);
      assert.deepEqual([p.lookupsInFlight(), p.lookupsInFlight('192.0.2.1'), p.lookupsInFlight('192.0.2.2')], [1, 1, 0]);
      r.answer('public.example');
      for (const found of await Promise.all(all)) assert.equal(found.address, '8.8.8.8');
      assert.equal(p.lookupsInFlight(), 0);
    });

    it('never counts or refuses an IP literal', async () => {
      const p = policy({ DNS_MAX_LOOKUPS: '1', DNS_MAX_LOOKUPS_PER_IP: '1' }, heldResolver());
      p.resolveTarget('a.example', 22, CLIENT).catch(() => undefined);
      assert.equal((await p.resolveTarget('8.8.4.4', 22, CLIENT)).address, '8.8.4.4');
      assert.equal(p.lookupsInFlight(), 1);
    });
  });

  it('fails closed on a resolver answer that is not an IP address', async () => {
    const p = policy({}, stubResolver(DNS));
    assert.equal((await refusal(p.resolveTarget('garbage.example', 22, CLIENT))).status, 403);
  });

  it('a user BLOCKED_TARGETS list replaces the default, so loopback may pass', async () => {
    const p = policy({ BLOCKED_TARGETS: '10.0.0.0/8' }, stubResolver(DNS));
    assert.deepEqual(await p.resolveTarget('localhost', 22, CLIENT), { address: '::1', family: 6, port: 22 });
    assert.deepEqual(await p.resolveTarget('0x7f.1', 2222, CLIENT), { address: '127.0.0.1', family: 4, port: 2222 });
    assert.equal((await refusal(p.resolveTarget('10.1.1.1', 22, CLIENT))).status, 403);
  });

  it('gives the same answer each time it is asked about an IP literal (decisions are kept), per port', async () => {
    const blocklist = countingBlocklist();
    const p = policy({ ALLOWED_TARGETS: '8.8.8.0/24:22' }, stubResolver(DNS), blocklist);
    let checksAfterFirstRound = -1;
    for (let i = 0; i < 3; i++) {
      if (i === 1) checksAfterFirstRound = blocklist.checks;
      assert.deepEqual(await p.resolveTarget('8.8.8.8', 22, CLIENT), { address: '8.8.8.8', family: 4, port: 22 });
      const other = await refusal(p.resolveTarget('8.8.8.8', 23, CLIENT));
      assert.deepEqual([other.status, other.reason, other.kind], [403, 'target not allowed', 'blocked']);
      const blocked = await refusal(p.resolveTarget('10.0.0.1', 22, CLIENT));
      assert.deepEqual([blocked.status, blocked.reason, blocked.kind], [403, 'target blocked', 'blocked']);
      assert.equal((await refusal(p.resolveTarget('8.8.8.8', 0, CLIENT))).reason, 'invalid port');
    }
    assert.ok(checksAfterFirstRound > 0);
    assert.equal(blocklist.checks, checksAfterFirstRound, 'the later rounds were answered from the kept decisions');
  });

  it('resolves a name on every request (only literal decisions are kept), and keeps at most 1024 of those', async () => {
    const r = stubResolver(DNS);
    const p = policy({}, r);
    await p.resolveTarget('public.example', 22, CLIENT);
    await p.resolveTarget('public.example', 22, CLIENT);
    assert.deepEqual(r.calls, ['public.example', 'public.example']);
    for (let i = 0; i < 3000; i++) await p.resolveTarget(String(134744072 + i), 22, CLIENT);
    const kept = (p as unknown as { literalDecisions: Map<string, unknown> }).literalDecisions.size;
    assert.ok(kept > 0 && kept <= 1024, `${kept} decisions kept`);
  });

  describe('with ALLOWED_TARGETS', () => {
    const env = { ALLOWED_TARGETS: '0.0.0.0/0:22,[::/0]:22,8.8.4.0/24:8000-8100' };

    it('admits matching targets', async () => {
      const p = policy(env, stubResolver(DNS));
      assert.equal((await p.resolveTarget('public.example', 22, CLIENT)).address, '8.8.8.8');
      assert.equal((await p.resolveTarget('dual.example', 22, CLIENT)).address, '2606:4700::1111');
      assert.equal((await p.resolveTarget('8.8.4.4', 8100, CLIENT)).port, 8100);
    });

    it('refuses with 403 target not allowed when any address or the port does not match', async () => {
      const p = policy({ ALLOWED_TARGETS: '8.8.8.0/24:22,1.1.1.1:443' }, stubResolver(DNS));
      assert.equal((await p.resolveTarget('1.1.1.1', 443, CLIENT)).address, '1.1.1.1');
      // dual.example has 1.1.1.1, allowed on 443, and 2606:4700::1111, allowed nowhere.
      for (const [host, port] of [['public.example', 80], ['1.1.1.1', 22], ['dual.example', 443], ['9.9.9.9', 22]] as const) {
        const r = await refusal(p.resolveTarget(host, port, CLIENT));
        assert.deepEqual([r.status, r.reason, r.kind], [403, 'target not allowed', 'blocked'], `${host}:${port}`);
      }
    });

    it('still applies the blocklist', async () => {
      const p = policy({ ALLOWED_TARGETS: '0.0.0.0/0:22,[::/0]:22' }, stubResolver(DNS));
      const r = await refusal(p.resolveTarget('127.0.0.1', 22, CLIENT));
      assert.deepEqual([r.status, r.reason], [403, 'target blocked']);
      assert.equal((await refusal(p.resolveTarget('8.8.8.8', 80, CLIENT))).reason, 'target not allowed');
    });
  });
});

describe('PolicyModule', () => {
  it('wires the services through Nest with a replaceable resolver', async () => {
    const stub = stubResolver({ 'public.example': ['8.8.8.8'], 'private.example': ['192.168.0.10'] });
    const config = parseConfig({ ALLOWED_TARGETS: '0.0.0.0/0:22' });
    const configModule = ConfigModule.forRoot({ ignoreEnvFile: true, isGlobal: true, load: [registerAs('wsproxy', () => config)] });
    const moduleRef = await Test.createTestingModule({ imports: [configModule, PolicyModule] })
      .overrideProvider(TargetResolver)
      .useValue(stub)
      .compile();
    try {
      const p = moduleRef.get(TargetPolicyService);
      const bl = moduleRef.get(BlocklistService);
      assert.equal(bl.isBlocked('10.0.0.1'), true);
      assert.deepEqual(await p.resolveTarget('public.example', 22, CLIENT), { address: '8.8.8.8', family: 4, port: 22 });
      assert.equal((await refusal(p.resolveTarget('public.example', 80, CLIENT))).reason, 'target not allowed');
      assert.equal((await refusal(p.resolveTarget('private.example', 22, CLIENT))).reason, 'target blocked');
      assert.deepEqual(stub.calls, ['public.example', 'public.example', 'private.example']);
    } finally {
      await moduleRef.close();
    }
  });
});
