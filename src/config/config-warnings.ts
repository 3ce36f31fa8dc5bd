import { BlocklistService, SELF_AND_METADATA_TARGETS } from '../policy/blocklist.service.js';
import { trustedProxyRange } from '../upgrade/client-ip.js';
import { CONFIG_VARS, authEnabled, listenersInTunnelPool, type WsproxyConfig } from './config.schema.js';

/**
 * Settings that validate but weaken the service, each as one sentence for a
 * warning at boot: the operator may mean them (tests do), so they start.
 */
export function configWarnings(config: WsproxyConfig): string[] {
  const warnings: string[] = [];
  // `::ffff:0:0/96` is a /0 too: every IPv4 peer, as mapped addresses are matched in their IPv4 spelling.
  if (config.trustedProxies.some((entry) => trustedProxyRange(entry)[1] === 0)) {
    warnings.push('TRUSTED_PROXIES includes a /0 range: every peer is a trusted proxy, so a client can choose its own address through X-Forwarded-For');
  }
  for (const [variable, port] of listenersInTunnelPool(config)) {
    warnings.push(`${variable} ${port} is inside the tunnel port pool (TUNNEL_PORT_MIN..TUNNEL_PORT_MAX): tunnels skip it`);
  }
  const open = rangesLeftOpen(config);
  if (open.length > 0) {
    warnings.push(`BLOCKED_TARGETS replaces the built-in list and leaves ${open.join(', ')} open: a relay may reach this host's own services or the cloud metadata service`);
  }
  if (authEnabled(config) && config.jwksRefetchCooldownS === 0) {
    warnings.push('JWKS_REFETCH_COOLDOWN_S is 0: every token naming an unknown kid fetches the JWKS again');
  }
  return warnings;
}

/** The ranges of `SELF_AND_METADATA_TARGETS` that a `BLOCKED_TARGETS` list does not block whole. `none` has its own warning. */
function rangesLeftOpen(config: WsproxyConfig): string[] {
  if (!Array.isArray(config.blockedTargets)) return [];
  const blocklist = new BlocklistService(config);
  return SELF_AND_METADATA_TARGETS.filter((range) => !blocklist.blocksWhole(range));
}

/** Kubernetes service links (`<SVC>_SERVICE_HOST`, `<SVC>_PORT=tcp://…`, `<SVC>_PORT_8080_TCP…`) are not the operator's typos. */
function isServiceLink(name: string, value: string | undefined): boolean {
  if (/_SERVICE_(HOST|PORT)/.test(name) || /_PORT_\d+_(TCP|UDP|SCTP)/.test(name)) return true;
  return /_PORT$/.test(name) && /^(tcp|udp|sctp):\/\//.test(value ?? '');
}

/**
 * A warning for each environment variable that looks like a misspelt wsproxy
 * variable (`MAX_CONN_PER_IP`, `tunnel_domain`): within two edits of one,
 * ignoring case. Such a setting is silently not applied otherwise. Names only:
 * values may be secrets.
 */
export function unknownVariableWarnings(env: Readonly<Record<string, string | undefined>>): string[] {
  const known = Object.values(CONFIG_VARS).map((s) => s.name);
  const knownSet = new Set<string>(known);
  const warnings: string[] = [];
  for (const name of Object.keys(env).sort()) {
    if (knownSet.has(name) || name.length < 6 || isServiceLink(name, env[name])) continue;
    const upper = name.toUpperCase();
    const near = known.find((k) => Math.abs(k.length - upper.length) <= 2 && editDistance(k, upper) <= 2);
    if (near) warnings.push(`${name} is not a wsproxy variable and is ignored: did you mean ${near}?`);
  }
  return warnings;
}

/** Levenshtein distance. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
