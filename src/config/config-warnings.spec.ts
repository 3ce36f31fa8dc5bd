import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from './config.schema.js';
import { DEFAULT_BLOCKED_TARGETS } from '../policy/blocklist.service.js';
import { configWarnings, unknownVariableWarnings } from './config-warnings.js';

const JWKS = 'https://clerk.example.com/.well-known/jwks.json';

describe('configWarnings', () => {
  it('has nothing to say about the defaults or ordinary settings', () => {
    assert.deepEqual(configWarnings(parseConfig({})), []);
    assert.deepEqual(configWarnings(parseConfig({ TRUSTED_PROXIES: '10.0.0.0/8,::1', CLERK_JWKS_URL: JWKS })), []);
  });

  it('warns about trusting every peer, IPv4 or IPv6', () => {
    for (const ranges of ['0.0.0.0/0', '10.0.0.0/8,::/0', '::ffff:0:0/96', '::ffff:0.0.0.0/90']) {
      const [w, ...rest] = configWarnings(parseConfig({ TRUSTED_PROXIES: ranges }));
      assert.match(w!, /^TRUSTED_PROXIES includes a \/0 range/);
      assert.equal(rest.length, 0);
    }
  });

  it('warns about a single node listening inside its own tunnel port pool, only with raw tunnels on', () => {
    assert.deepEqual(configWarnings(parseConfig({ PORT: '10050', METRICS_PORT: '10051' })), [
      'PORT 10050 is inside the tunnel port pool (TUNNEL_PORT_MIN..TUNNEL_PORT_MAX): tunnels skip it',
      'METRICS_PORT 10051 is inside the tunnel port pool (TUNNEL_PORT_MIN..TUNNEL_PORT_MAX): tunnels skip it',
    ]);
    assert.deepEqual(configWarnings(parseConfig({ PORT: '10050', TUNNEL_TCP_ENABLED: 'false' })), []);
  });

  it('warns about a BLOCKED_TARGETS list that leaves this host or the cloud metadata service reachable, naming what it leaves open', () => {
    const openOf = (list: string): string | undefined => configWarnings(parseConfig({ BLOCKED_TARGETS: list })).find((w) => w.startsWith('BLOCKED_TARGETS'));
    assert.equal(
      openOf('10.0.0.0/8'),
      "BLOCKED_TARGETS replaces the built-in list and leaves 0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16, ::/128, ::1/128, fe80::/10 open: a relay may reach this host's own services or the cloud metadata service",
    );
    // A range only partly listed is open; IPv4 listed in IPv4-mapped form counts as IPv4.
    assert.match(openOf('0.0.0.0/8,127.0.0.1,169.254.169.254/32,::ffff:127.0.0.0/104,::/127,fe80::/10')!, /leaves 169\.254\.0\.0\/16 open/);
    // The built-in list written out, a wider one, the default and none (which has its own warning at startup): nothing to say.
    for (const list of [DEFAULT_BLOCKED_TARGETS.join(','), '0.0.0.0/0,::/1,fe80::/9', '', 'none']) assert.equal(openOf(list), undefined, list);
  });

  it('warns about a JWKS refetch with no cooldown, only with authentication on', () => {
    assert.match(configWarnings(parseConfig({ CLERK_JWKS_URL: JWKS, JWKS_REFETCH_COOLDOWN_S: '0' }))[0]!, /^JWKS_REFETCH_COOLDOWN_S is 0/);
    assert.deepEqual(configWarnings(parseConfig({ JWKS_REFETCH_COOLDOWN_S: '0' })), []);
  });
});

describe('unknownVariableWarnings', () => {
  it('names a variable within two edits of a wsproxy one, in any case, and never its value', () => {
    const warnings = unknownVariableWarnings({ MAX_CONN_PER_IP: 'secret-5', tunnel_domain: 'secret-x', LOG_LEVL: 'debug', TUNNEL_DOMIAN: 'x', METRIC_PORT: '9100' });
    assert.deepEqual(warnings, [
      'LOG_LEVL is not a wsproxy variable and is ignored: did you mean LOG_LEVEL?',
      'MAX_CONN_PER_IP is not a wsproxy variable and is ignored: did you mean MAX_CONNS_PER_IP?',
      'METRIC_PORT is not a wsproxy variable and is ignored: did you mean METRICS_PORT?',
      'TUNNEL_DOMIAN is not a wsproxy variable and is ignored: did you mean TUNNEL_DOMAIN?',
      'tunnel_domain is not a wsproxy variable and is ignored: did you mean TUNNEL_DOMAIN?',
    ]);
    assert.ok(!warnings.join('\n').includes('secret'));
  });

  it('leaves known variables, unrelated ones and Kubernetes service links alone', () => {
    assert.deepEqual(
      unknownVariableWarnings({
        MAX_CONNS_PER_IP: '5',
        PATH: '/usr/bin',
        HOSTNAME: 'pod-1',
        NODE_ENV: 'production',
        KUBERNETES_SERVICE_HOST: '10.0.0.1',
        KUBERNETES_SERVICE_PORT: '443',
        REDIS_PORT: 'tcp://10.0.0.2:6379',
        REDIS_PORT_6379_TCP_ADDR: '10.0.0.2',
        WSPROXY_PORT: 'tcp://10.0.0.3:8080',
        WSPROXY_SERVICE_PORT: '8080',
      }),
      [],
    );
  });
});
