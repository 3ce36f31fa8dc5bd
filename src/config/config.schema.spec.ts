import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CONFIG_VARS, ConfigError, parseConfig } from './config.schema.js';

/** The variable and problem `env` is refused for. */
function refusal(env: Record<string, string>): string {
  try {
    parseConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return `${err.variable} ${err.problem}`;
  }
  assert.fail(`accepted ${JSON.stringify(env)}`);
}

const CLUSTER = { REDIS_URL: 'redis://127.0.0.1:6379', CLUSTER_SECRET: 'a-long-enough-cluster-secret', CLUSTER_ADVERTISE_URL: 'http://10.1.2.3:8080' };

describe('parseConfig', () => {
  it('refuses a list that is set but has no entries, instead of reading it as empty', () => {
    // Read as empty, these mean "block nothing", "allow every target", "no audience check"…
    for (const name of ['BLOCKED_TARGETS', 'TRUSTED_PROXIES', 'ALLOWED_TARGETS', 'JWT_AUDIENCE', 'ALLOWED_ORIGINS']) {
      for (const raw of [',', ' , ', ',,', ' ']) assert.match(refusal({ [name]: raw }), new RegExp(`^${name} is ".*", a list without entries$`), `${name}=${raw}`);
    }
    assert.deepEqual(parseConfig({ BLOCKED_TARGETS: '10.0.0.0/8,' }).blockedTargets, ['10.0.0.0/8']);
  });

  it('refuses a blank CLERK_JWKS_URL instead of reading it as "authentication off"; empty is unset', () => {
    for (const raw of [' ', '\t ']) assert.match(refusal({ CLERK_JWKS_URL: raw }), /^CLERK_JWKS_URL is ".*", blank$/, JSON.stringify(raw));
    assert.equal(parseConfig({ CLERK_JWKS_URL: '' }).clerkJwksUrl, '');
    assert.equal(refusal({ CLUSTER_ADVERTISE_URL: ' ' }), 'CLUSTER_ADVERTISE_URL is " ", blank');
  });

  it('refuses a blank METRICS_PORT, BIND_HOST or REDIS_URL instead of reading it as unset; empty is unset', () => {
    // Read as empty: /metrics on the public port, every interface, a replica alone with the whole of every limit.
    assert.equal(refusal({ METRICS_PORT: ' ' }), 'METRICS_PORT is " ", not a whole number');
    assert.equal(refusal({ BIND_HOST: ' ' }), 'BIND_HOST is " ", blank');
    // Brackets around nothing (a templated `[${ADDR6}]` with the variable unset) are no address either.
    assert.equal(refusal({ BIND_HOST: '[]' }), 'BIND_HOST is "[]", blank');
    assert.equal(refusal({ REDIS_URL: '  ' }), 'REDIS_URL is "  ", blank');
    const unset = parseConfig({ METRICS_PORT: '', BIND_HOST: '', REDIS_URL: '' });
    assert.deepEqual([unset.metricsPort, unset.bindHost, unset.redisUrl], [null, '', '']);
  });

  it('reads an empty value as unset for every variable but ALLOWED_ORIGINS: the default, not a refusal', () => {
    const defaults = parseConfig({});
    for (const v of Object.values(CONFIG_VARS)) {
      if (v.name === 'ALLOWED_ORIGINS') continue;
      const key = Object.keys(CONFIG_VARS).find((k) => CONFIG_VARS[k as keyof typeof CONFIG_VARS] === v) as keyof typeof defaults;
      assert.deepEqual(parseConfig({ [v.name]: '' })[key], defaults[key], v.name);
    }
  });

  it('refuses a value of blanks only for every variable (read as empty, it would switch something off)', () => {
    for (const v of Object.values(CONFIG_VARS)) assert.throws(() => parseConfig({ [v.name]: ' ' }), ConfigError, v.name);
  });

  it('refuses a blank JWT_ISSUER instead of reading it as "no issuer check"; empty is unset', () => {
    for (const raw of [' ', '\t ']) assert.match(refusal({ JWT_ISSUER: raw }), /^JWT_ISSUER is ".*", blank$/, JSON.stringify(raw));
    assert.equal(parseConfig({ JWT_ISSUER: '' }).jwtIssuer, '');
    assert.equal(parseConfig({ JWT_ISSUER: ' https://clerk.example.com ' }).jwtIssuer, 'https://clerk.example.com');
  });

  it('holds integers to both ends of their range', () => {
    assert.equal(refusal({ HANDSHAKE_TIMEOUT_MS: '0' }), 'HANDSHAKE_TIMEOUT_MS is 0, out of range');
    assert.equal(refusal({ TUNNEL_PORT_MIN: '0' }), 'TUNNEL_PORT_MIN is 0, out of range');
    assert.equal(refusal({ PORT: '65536' }), 'PORT is 65536, out of range');
    assert.equal(parseConfig({ TUNNEL_PORT_MIN: '1', TUNNEL_PORT_MAX: '65535' }).tunnelPortMax, 65535);
  });

  it('holds every integer variable to the range the README documents for it, at both ends, and takes only whole numbers', () => {
    // The README's Accepted column is generated from `accepted` (readme.e2e-spec keeps the two in sync).
    // Neighbours a bound needs to be valid on its own: a port range of one port, a v1 buffer above a body limit of 0.
    const companions: Record<string, Record<string, string>> = {
      TUNNEL_PORT_MIN: { TUNNEL_PORT_MAX: '65535' },
      TUNNEL_PORT_MAX: { TUNNEL_PORT_MIN: '1' },
      TUNNEL_V1_BODY_BUFFER_BYTES: { TUNNEL_MAX_BODY_BYTES: '0' },
    };
    let checked = 0;
    for (const v of Object.values(CONFIG_VARS)) {
      const range = /^(\d+)\.\.(\d+)/.exec(v.accepted);
      if (!range) continue;
      checked++;
      const [lo, hi] = [Number(range[1]), Number(range[2])];
      const env = (n: number | string): Record<string, string> => ({ ...companions[v.name], [v.name]: String(n) });
      assert.doesNotThrow(() => parseConfig(env(lo)), `${v.name}=${lo}`);
      assert.doesNotThrow(() => parseConfig(env(hi)), `${v.name}=${hi}`);
      assert.equal(refusal(env(hi + 1)), `${v.name} is ${hi + 1}, out of range`);
      // A 0 the column gives a meaning to (`PORT`: any free port) is taken below the range.
      if (/\(0[ :=]/.test(v.accepted)) assert.doesNotThrow(() => parseConfig(env(0)), `${v.name}=0`);
      else if (lo > 0) assert.equal(refusal(env(lo - 1)), `${v.name} is ${lo - 1}, out of range`);
      for (const raw of ['-1', '1.5', '1e3', '0x10', 'ten']) assert.equal(refusal(env(raw)), `${v.name} is "${raw}", not a whole number`);
    }
    assert.ok(checked >= 36, `only ${checked} integer variables found (the README lists 36)`);
  });

  it('takes true or false for TUNNEL_TCP_ENABLED, also 1/0, yes/no, on/off, in any case, and refuses anything else', () => {
    for (const raw of ['true', '1', 'yes', 'on', 'TRUE', 'Yes', ' On ']) assert.equal(parseConfig({ TUNNEL_TCP_ENABLED: raw }).tunnelTcpEnabled, true, raw);
    for (const raw of ['false', '0', 'no', 'off', 'FALSE', 'No', 'OFF']) assert.equal(parseConfig({ TUNNEL_TCP_ENABLED: raw }).tunnelTcpEnabled, false, raw);
    for (const raw of ['enabled', '2', 'y']) assert.equal(refusal({ TUNNEL_TCP_ENABLED: raw }), `TUNNEL_TCP_ENABLED is "${raw}"`);
  });

  it('takes LOG_LEVEL and TUNNEL_PUBLIC_SCHEME from their lists in any case, and nothing else', () => {
    assert.equal(parseConfig({ LOG_LEVEL: 'WARN' }).logLevel, 'warn');
    assert.equal(parseConfig({ TUNNEL_PUBLIC_SCHEME: 'HTTP' }).tunnelPublicScheme, 'http');
    assert.equal(refusal({ LOG_LEVEL: 'verbose' }), 'LOG_LEVEL is "verbose"');
    assert.equal(refusal({ TUNNEL_PUBLIC_SCHEME: 'wss' }), 'TUNNEL_PUBLIC_SCHEME is "wss"');
  });

  it('takes a tunnel port range of one port, and refuses one whose end is a port below its start', () => {
    assert.equal(refusal({ TUNNEL_PORT_MIN: '10001', TUNNEL_PORT_MAX: '10000' }), 'TUNNEL_PORT_MAX (10000) is below TUNNEL_PORT_MIN (10001)');
    const one = parseConfig({ TUNNEL_PORT_MIN: '10000', TUNNEL_PORT_MAX: '10000' });
    assert.deepEqual([one.tunnelPortMin, one.tunnelPortMax], [10000, 10000]);
  });

  it('in cluster mode, refuses a CLUSTER_SECRET of 15 characters and takes one of 16', () => {
    assert.equal(refusal({ ...CLUSTER, CLUSTER_SECRET: 'x'.repeat(15) }), 'CLUSTER_SECRET is missing or shorter than 16 characters while REDIS_URL is set');
    assert.equal(parseConfig({ ...CLUSTER, CLUSTER_SECRET: 'x'.repeat(16) }).clusterSecret, 'x'.repeat(16));
  });

  it('takes only the asymmetric JWT algorithms: never none or an HMAC one', () => {
    for (const alg of ['none', 'HS256', 'rs256']) assert.match(refusal({ JWT_ALGORITHMS: `RS256,${alg}` }), new RegExp(`^JWT_ALGORITHMS has "${alg}"`));
    assert.deepEqual(parseConfig({ JWT_ALGORITHMS: 'RS256,EdDSA' }).jwtAlgorithms, ['RS256', 'EdDSA']);
  });

  it('holds a CIDR prefix to its family: /32 for IPv4, /128 for IPv6', () => {
    assert.match(refusal({ BLOCKED_TARGETS: '10.0.0.0/33' }), /^BLOCKED_TARGETS /);
    assert.match(refusal({ TRUSTED_PROXIES: '10.0.0.0/64' }), /^TRUSTED_PROXIES /);
    assert.match(refusal({ BLOCKED_TARGETS: 'fc00::/129' }), /^BLOCKED_TARGETS /);
    assert.deepEqual(parseConfig({ BLOCKED_TARGETS: '10.0.0.0/32,fc00::/128' }).blockedTargets, ['10.0.0.0/32', 'fc00::/128']);
  });

  it('takes a DNS name for TUNNEL_DOMAIN, not a lone dot or an IP address', () => {
    assert.equal(parseConfig({ TUNNEL_DOMAIN: 'Tunnel.Example.com.' }).tunnelDomain, 'tunnel.example.com');
    assert.equal(parseConfig({ TUNNEL_DOMAIN: '' }).tunnelDomain, '');
    assert.match(refusal({ TUNNEL_DOMAIN: '.' }), /^TUNNEL_DOMAIN is "\."/);
    assert.match(refusal({ TUNNEL_DOMAIN: '127.0.0.1' }), /^TUNNEL_DOMAIN is "127\.0\.0\.1", not a DNS name/);
  });

  it('refuses an IPv6 zone id in an address list: it names an interface, not addresses', () => {
    assert.match(refusal({ BLOCKED_TARGETS: 'fe80::1%lo' }), /^BLOCKED_TARGETS /);
    assert.match(refusal({ TRUSTED_PROXIES: 'fe80::1%eth0' }), /^TRUSTED_PROXIES /);
    assert.match(refusal({ BLOCKED_TARGETS: 'fe80::%eth0/64' }), /^BLOCKED_TARGETS /);
  });

  it('takes plain http for CLERK_JWKS_URL on loopback only', () => {
    assert.equal(parseConfig({ CLERK_JWKS_URL: 'http://127.0.0.1:8080/jwks.json' }).clerkJwksUrl, 'http://127.0.0.1:8080/jwks.json');
    assert.match(refusal({ CLERK_JWKS_URL: 'http://clerk.example.com/jwks.json' }), /^CLERK_JWKS_URL uses http:/);
    assert.match(refusal({ CLERK_JWKS_URL: 'http://10.0.0.1/jwks.json' }), /^CLERK_JWKS_URL uses http:/);
  });

  it('refuses ALLOWED_ORIGINS entries no browser origin can match: a * inside the host, a port a browser never writes, a trailing dot', () => {
    for (const dead of [
      'https://*',
      'https://a.*.com',
      'https://*.*.example.com',
      'https://example.com:99999',
      'http://localhost:0',
      'https://*.example.com:08080',
      'https://example.com.',
      'http://localhost:*, https://x*y.example.com',
    ]) {
      assert.match(refusal({ ALLOWED_ORIGINS: dead }), /^ALLOWED_ORIGINS has "[^"]+", not an origin$/, dead);
    }
    assert.deepEqual(parseConfig({ ALLOWED_ORIGINS: 'https://*.example.com,http://localhost:*,https://example.com:65535' }).allowedOrigins, [
      'https://*.example.com',
      'http://localhost:*',
      'https://example.com:65535',
    ]);
  });

  it('refuses an empty ALLOWED_ORIGINS, which would turn every browser away without a word', () => {
    assert.equal(refusal({ ALLOWED_ORIGINS: '' }), 'ALLOWED_ORIGINS is empty');
    assert.equal(refusal({ ALLOWED_ORIGINS: '  ' }), 'ALLOWED_ORIGINS is "  ", a list without entries');
    assert.deepEqual(parseConfig({}).allowedOrigins, ['*']);
  });

  it('refuses URLs with a user or password (they would be logged with every fetch error)', () => {
    assert.equal(refusal({ CLERK_JWKS_URL: 'https://user:secret@clerk.example.com/.well-known/jwks.json' }), 'CLERK_JWKS_URL has a user or password in it');
    assert.equal(refusal({ ...CLUSTER, CLUSTER_ADVERTISE_URL: 'http://u:p@10.1.2.3:8080' }), 'CLUSTER_ADVERTISE_URL has a user or password in it');
  });

  it('takes scheme, host and port only for CLUSTER_ADVERTISE_URL (paths are appended to it)', () => {
    for (const url of ['http://10.1.2.3:8080/prefix', 'http://10.1.2.3:8080/?x=1', 'http://10.1.2.3:8080#f']) {
      assert.equal(refusal({ ...CLUSTER, CLUSTER_ADVERTISE_URL: url }), 'CLUSTER_ADVERTISE_URL has a path, query or fragment', url);
    }
    assert.equal(parseConfig({ ...CLUSTER, CLUSTER_ADVERTISE_URL: 'http://10.1.2.3:8080/' }).clusterAdvertiseUrl, 'http://10.1.2.3:8080/');
  });

  it('refuses a CLUSTER_ADVERTISE_URL naming the unspecified address (other replicas would dial themselves)', () => {
    for (const url of ['http://0.0.0.0:8080', 'http://[::]:8080', 'https://[0:0:0:0:0:0:0:0]:8443']) {
      assert.equal(refusal({ ...CLUSTER, CLUSTER_ADVERTISE_URL: url }), 'CLUSTER_ADVERTISE_URL names the unspecified address, which other replicas cannot reach', url);
    }
    assert.equal(parseConfig({ ...CLUSTER, CLUSTER_ADVERTISE_URL: 'http://[fd00::1]:8080' }).clusterAdvertiseUrl, 'http://[fd00::1]:8080');
  });

  it('refuses a REDIS_URL path that is not a database number (ioredis would send SELECT NaN and crash)', () => {
    assert.equal(refusal({ ...CLUSTER, REDIS_URL: 'redis://:pw@127.0.0.1:6379/abc' }), 'REDIS_URL has a path that is not a database number');
    for (const url of ['redis://127.0.0.1:6379', 'redis://127.0.0.1:6379/', 'redis://127.0.0.1:6379/3']) assert.equal(parseConfig({ ...CLUSTER, REDIS_URL: url }).redisUrl, url);
  });

  it('takes an IP address for BIND_HOST, IPv6 with or without brackets, and nothing that needs a name lookup', () => {
    for (const raw of ['foo', 'localhost', '127.1', '0', 'example.com']) assert.match(refusal({ BIND_HOST: raw }), /^BIND_HOST is ".*", not an IP address$/, raw);
    assert.equal(parseConfig({ BIND_HOST: '[::1]' }).bindHost, '::1');
    assert.equal(parseConfig({ BIND_HOST: ' 127.0.0.1 ' }).bindHost, '127.0.0.1');
    assert.equal(parseConfig({}).bindHost, '');
  });

  it('takes an IP address for TUNNEL_BIND_HOST, IPv6 with or without brackets (as BIND_HOST), and refuses anything else', () => {
    assert.equal(parseConfig({ TUNNEL_BIND_HOST: '[::1]' }).tunnelBindHost, '::1');
    assert.equal(parseConfig({ TUNNEL_BIND_HOST: ' [::] ' }).tunnelBindHost, '::');
    assert.equal(parseConfig({ TUNNEL_BIND_HOST: '::1' }).tunnelBindHost, '::1');
    assert.equal(parseConfig({ TUNNEL_BIND_HOST: '127.0.0.1' }).tunnelBindHost, '127.0.0.1');
    assert.equal(parseConfig({}).tunnelBindHost, '0.0.0.0');
    for (const raw of ['[]', '[[::1]]', '[::1', '::1]', '[foo]', 'localhost', '127.1', ' ', '[::1]:80']) {
      assert.match(refusal({ TUNNEL_BIND_HOST: raw }), /^TUNNEL_BIND_HOST is ".*", not an IP address$/, raw);
    }
  });

  it('refuses listeners that would collide: METRICS_PORT on PORT; in cluster mode, either inside the tunnel port pool', () => {
    assert.equal(refusal({ PORT: '9000', METRICS_PORT: '9000' }), 'METRICS_PORT is 9000, the same as PORT');
    assert.match(refusal({ ...CLUSTER, PORT: '10050' }), /^PORT is 10050, inside the tunnel port pool/);
    assert.match(refusal({ ...CLUSTER, METRICS_PORT: '10000' }), /^METRICS_PORT is 10000, inside the tunnel port pool/);
    // A single node only loses that one port to its own listener: it starts (with a warning).
    assert.equal(parseConfig({ PORT: '10050' }).port, 10050);
    assert.equal(parseConfig({ ...CLUSTER, PORT: '10050', TUNNEL_TCP_ENABLED: 'false' }).port, 10050);
    assert.equal(parseConfig({ PORT: '0', METRICS_PORT: '0' }).metricsPort, 0);
  });

  it('refuses a REDIS_URL db parameter that is not a database number', () => {
    assert.equal(refusal({ ...CLUSTER, REDIS_URL: 'redis://127.0.0.1:6379?db=abc' }), 'REDIS_URL has a db parameter that is not a database number');
    assert.equal(parseConfig({ ...CLUSTER, REDIS_URL: 'redis://127.0.0.1:6379?db=2' }).redisUrl, 'redis://127.0.0.1:6379?db=2');
  });
});
