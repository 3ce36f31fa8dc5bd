import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { SUPPORTED_JWT_ALGORITHMS } from '../auth/jws-verifier.js';
import { parseAllowedTargets } from '../policy/allowed-targets.js';
import { v1MaxBodyBytes } from '../tunnel/v1/v1-limits.js';
import { isOriginEntry } from '../upgrade/origin-policy.js';

/**
 * The one configuration schema. Every environment variable the service reads is
 * declared here, with its default, its accepted form and a description; the
 * README's configuration table is this table.
 */

/** A configuration value that failed validation; `main` prints it as one line and exits 1. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    readonly problem: string,
    readonly accepted: string,
  ) {
    super(`invalid configuration: ${variable} ${problem} (accepted: ${accepted})`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

interface VarSpec<T> {
  readonly name: string;
  readonly default: string;
  readonly accepted: string;
  readonly description: string;
  parse(raw: string, name: string): T;
}

function fail(name: string, problem: string, accepted: string): never {
  throw new ConfigError(name, problem, accepted);
}

function int(min: number, max: number) {
  return (raw: string, name: string): number => {
    if (!/^\d+$/.test(raw.trim())) fail(name, `is "${raw}", not a whole number`, `an integer ${min}..${max}`);
    const n = Number(raw.trim());
    if (n < min || n > max) fail(name, `is ${n}, out of range`, `an integer ${min}..${max}`);
    return n;
  };
}

function bool(raw: string, name: string): boolean {
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  return fail(name, `is "${raw}"`, 'true or false (also 1/0, yes/no, on/off; any case)');
}

function str(raw: string): string {
  return raw.trim();
}

/** `str`, refusing a value that is set but blank (`JWT_ISSUER=" "`): read as empty, it would switch its check off. */
function text(raw: string, name: string, accepted: string): string {
  const v = raw.trim();
  if (v === '' && raw !== '') fail(name, `is "${raw}", blank`, accepted);
  return v;
}

function list(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/**
 * `list`, refusing a value that is set but holds no entry (`,`, ` , `, ` `): read as
 * empty, it would silently mean "no restriction" or "nothing allowed".
 */
function entries(raw: string, name: string, accepted: string): string[] {
  const out = list(raw);
  if (out.length === 0 && raw !== '') fail(name, `is "${raw}", a list without entries`, accepted);
  return out;
}

function oneOf<T extends string>(values: readonly T[]) {
  return (raw: string, name: string): T => {
    const v = raw.trim().toLowerCase() as T;
    if (!values.includes(v)) fail(name, `is "${raw}"`, values.join(', '));
    return v;
  };
}

/** The ipaddr.js range of `host` (an IPv6 literal may be in brackets), or null when it is not an IP literal. */
function addressRange(host: string): string | null {
  const h = host.replace(/^\[|\]$/g, '');
  return ipaddr.isValid(h) ? ipaddr.process(h).range() : null;
}

/** Whether `host` is `localhost` or a loopback address in any spelling. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || addressRange(host) === 'loopback';
}

/** `v` parsed as an absolute URL; refuses `name` with `accepted` as the remedy otherwise. */
function absoluteUrl(v: string, name: string, accepted: string): URL {
  try {
    return new URL(v);
  } catch {
    return fail(name, 'is not a URL', accepted);
  }
}

/**
 * An optional absolute URL. Never with a user or password: they would be
 * written into logs with every error that quotes the URL. `originOnly`: no
 * path, query or fragment either (paths are appended to it).
 */
function optionalUrl(protocols: string[], loopbackHttpOk: boolean, originOnly = false) {
  return (raw: string, name: string): string => {
    // Set but blank (`CLERK_JWKS_URL=" "`): read as empty it would switch authentication off.
    const v = text(raw, name, `an absolute ${protocols.join(' or ')} URL, or empty`);
    if (v === '') return '';
    const url = absoluteUrl(v, name, `an absolute ${protocols.join(' or ')} URL`);
    if (url.username !== '' || url.password !== '') fail(name, 'has a user or password in it', `a ${protocols.join(' or ')} URL without credentials`);
    if (originOnly && (url.pathname !== '/' || url.search !== '' || url.hash !== '')) {
      fail(name, 'has a path, query or fragment', `scheme, host and port only, e.g. ${protocols[0]}://10.1.2.3:8080`);
    }
    const scheme = url.protocol.replace(/:$/, '');
    if (protocols.includes(scheme)) return v;
    if (loopbackHttpOk && scheme === 'http' && isLoopbackHost(url.hostname)) return v;
    return fail(
      name,
      `uses ${scheme}:`,
      `${protocols.join(' or ')} URL${loopbackHttpOk ? ' (http only to a loopback host)' : ''}`,
    );
  };
}

const clusterUrl = optionalUrl(['http', 'https'], false, true);

/** CLUSTER_ADVERTISE_URL: an origin other replicas can dial, so not the unspecified address (they would dial themselves). */
function advertiseUrl(raw: string, name: string): string {
  const v = clusterUrl(raw, name);
  if (v !== '' && addressRange(new URL(v).hostname) === 'unspecified') {
    fail(name, 'names the unspecified address, which other replicas cannot reach', 'this replica\'s own address, e.g. http://10.1.2.3:8080');
  }
  return v;
}

/** A comma-separated list whose every entry passes `valid`; the first that does not is refused as "not <what>". */
function listOf(valid: (entry: string) => boolean, what: string, accepted: string) {
  return (raw: string, name: string): string[] => {
    const found = entries(raw, name, accepted);
    for (const e of found) {
      if (!valid(e)) fail(name, `has "${e}", not ${what}`, accepted);
    }
    return found;
  };
}

const ORIGINS_ACCEPTED = '`*`, or origins such as https://app.example.com, https://*.example.com, http://localhost:*';
const originEntries = listOf(isOriginEntry, 'an origin', ORIGINS_ACCEPTED);

/** An empty ALLOWED_ORIGINS would refuse every browser without a word: refused here instead. */
function originList(raw: string, name: string): string[] {
  if (raw === '') fail(name, 'is empty', ORIGINS_ACCEPTED);
  return originEntries(raw, name);
}
const cidrList = listOf(isCidrOrIp, 'an IP address or CIDR', 'comma-separated IPs or CIDRs, e.g. 10.0.0.0/8,::1');

/** Standard notation only: ipaddr.js would also read legacy forms such as `10/8` as 0.0.0.10/8. */
function isCidrOrIp(e: string): boolean {
  // A zone id (`fe80::1%eth0`) names an interface, not addresses a range can hold; node:net reads it as an IP.
  if (e.includes('%')) return false;
  const slash = e.indexOf('/');
  if (slash === -1) return isIP(e) !== 0;
  const family = isIP(e.slice(0, slash));
  const bits = e.slice(slash + 1);
  return family !== 0 && /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

function jwtAlgorithms(raw: string, name: string): string[] {
  const algs = list(raw);
  if (algs.length === 0) fail(name, 'is empty', SUPPORTED_JWT_ALGORITHMS.join(', '));
  for (const a of algs) {
    if (!SUPPORTED_JWT_ALGORITHMS.includes(a)) fail(name, `has "${a}" (never none or an HMAC algorithm)`, SUPPORTED_JWT_ALGORITHMS.join(', '));
  }
  return algs;
}

function spec<T>(
  name: string,
  def: string,
  accepted: string,
  description: string,
  parse: (raw: string, name: string) => T,
): VarSpec<T> {
  return { name, default: def, accepted, description, parse };
}

const MiB = 1024 * 1024;

/** Every variable, in the order the README lists them. */
export const CONFIG_VARS = {
  port: spec('PORT', '8080', '1..65535 (0 = any free port)', 'HTTP/WebSocket listen port. 0 is for tests: the image\'s HEALTHCHECK cannot find the port it picked.', int(0, 65535)),
  bindHost: spec('BIND_HOST', '', 'an IP address, or empty for all interfaces', 'Address the HTTP listener binds.', (raw: string, name: string): string => {
    // Brackets are how URLs write IPv6; the listener wants the bare address.
    const v = raw.trim().replace(/^\[(.*)\]$/, '$1');
    // Set but blank, or empty brackets (`[${ADDR6}]` with the variable unset): read as empty it would listen on every interface.
    if (v === '' && raw !== '') fail(name, `is "${raw}", blank`, 'an IP address such as 0.0.0.0, ::, 127.0.0.1, or empty for all interfaces');
    if (v !== '' && isIP(v) === 0) fail(name, `is "${raw}", not an IP address`, 'an IP address such as 0.0.0.0, ::, 127.0.0.1, or empty for all interfaces');
    return v;
  }),
  logLevel: spec(
    'LOG_LEVEL',
    'info',
    'fatal, error, warn, info, debug, trace, silent (any case)',
    'Log level of the JSON logs on stdout.',
    oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const),
  ),
  clerkJwksUrl: spec(
    'CLERK_JWKS_URL',
    '',
    'https URL (http only to a loopback host); empty turns auth off',
    'JWKS endpoint of the token issuer (Clerk). Empty: no authentication, every client is user `anonymous`, and the per-user limits do not apply.',
    optionalUrl(['https'], true),
  ),
  jwtIssuer: spec('JWT_ISSUER', '', 'the exact `iss` string, or empty', 'Required `iss` claim when set.', (raw: string, name: string) =>
    text(raw, name, 'the exact `iss` string, or empty'),
  ),
  jwtAudience: spec('JWT_AUDIENCE', '', 'comma-separated audiences, or empty', 'Required `aud` (one of) when set.', (raw: string, name: string) =>
    entries(raw, name, 'comma-separated audiences, or empty'),
  ),
  jwtAlgorithms: spec('JWT_ALGORITHMS', 'RS256', SUPPORTED_JWT_ALGORITHMS.join(', '), 'Accepted JWT signature algorithms.', jwtAlgorithms),
  jwtClockToleranceS: spec('JWT_CLOCK_TOLERANCE_S', '5', '0..300', 'Clock skew allowed on exp/nbf/iat, seconds.', int(0, 300)),
  jwksCacheTtlS: spec('JWKS_CACHE_TTL_S', '900', '1..86400', 'How long fetched JWKS keys are used before a refetch, seconds.', int(1, 86400)),
  jwksRefetchCooldownS: spec(
    'JWKS_REFETCH_COOLDOWN_S',
    '30',
    '0..3600',
    'Minimum time between refetches caused by unknown `kid`s, seconds.',
    int(0, 3600),
  ),
  jwksFetchTimeoutMs: spec('JWKS_FETCH_TIMEOUT_MS', '5000', '100..60000', 'Timeout of one JWKS fetch, ms.', int(100, 60000)),
  jwksMaxStaleS: spec(
    'JWKS_MAX_STALE_S',
    '86400',
    '0..604800',
    'How long cached keys keep serving while the JWKS endpoint fails, seconds.',
    int(0, 604800),
  ),
  allowedOrigins: spec(
    'ALLOWED_ORIGINS',
    '*',
    '`*`, or comma-separated origins: exact, `https://*.example.com`, `http://localhost:*`',
    'Browser origins allowed to open /relay and /tunnel. Requests without Origin pass.',
    originList,
  ),
  trustedProxies: spec(
    'TRUSTED_PROXIES',
    '',
    'comma-separated IPs/CIDRs',
    'Proxies whose X-Forwarded-For / X-Real-IP is believed; the client is the rightmost X-Forwarded-For hop not in this list.',
    cidrList,
  ),
  maxConnections: spec(
    'MAX_CONNECTIONS',
    '10000',
    '1..1000000',
    'Most WebSocket connections this replica holds at once: relays (a resumable one also while it waits for its client to come back: it keeps its target), tunnels, and admissions still in progress (auth, DNS, dial; a reattach while it is admitted). Beyond it an upgrade is refused 503 `proxy at capacity` before authentication. Per replica, also in cluster mode. A relay takes two file descriptors, so the default needs about 20 000 of the open-file limit (Node raises its soft limit to the hard one: 1048576 in most containers) and, idle, about 110 MiB; set it to what the descriptors and memory of one replica hold.',
    int(1, 1_000_000),
  ),
  maxConnsPerIp: spec('MAX_CONNS_PER_IP', '10', '1..1000000', 'Concurrent relays + tunnels per client IP (an IPv6 client: per `IPV6_LIMIT_PREFIX`).', int(1, 1_000_000)),
  ipv6LimitPrefix: spec(
    'IPV6_LIMIT_PREFIX',
    '64',
    '32..128',
    'Prefix length by which the per-IP limits count IPv6 clients: every address of one /64 (a subscriber holds one at least, and can take a new address from it for each connection) counts as one client; 128 counts each address. IPv4 addresses count alone.',
    int(32, 128),
  ),
  maxConnsPerUser: spec('MAX_CONNS_PER_USER', '20', '1..1000000', 'Concurrent relays + tunnels per user (`sub`). Not applied with authentication off (one `anonymous` user).', int(1, 1_000_000)),
  blockedTargets: spec(
    'BLOCKED_TARGETS',
    '',
    'comma-separated IPs/CIDRs, or `none`; empty = the built-in list of non-public ranges',
    'Targets never dialled. Setting it replaces the default list.',
    (raw: string, name: string): string[] | 'none' | 'default' => {
      if (raw === '') return 'default';
      if (raw.trim().toLowerCase() === 'none') return 'none';
      return cidrList(raw, name);
    },
  ),
  allowedTargets: spec(
    'ALLOWED_TARGETS',
    '',
    'comma-separated `CIDR`, `CIDR:port` or `CIDR:lo-hi` (IPv6 as `[CIDR]:port`)',
    'When set, a target must match an entry (e.g. `0.0.0.0/0:22,[::/0]:22`). The blocklist still applies.',
    (raw: string, name: string) => parseAllowedTargets(raw, name),
  ),
  dialTimeoutMs: spec('DIAL_TIMEOUT_MS', '10000', '100..120000', 'TCP connect timeout to a target, ms.', int(100, 120000)),
  dnsTimeoutMs: spec('DNS_TIMEOUT_MS', '5000', '100..60000', 'Name resolution timeout for a target, ms.', int(100, 60000)),
  dnsMaxLookups: spec(
    'DNS_MAX_LOOKUPS',
    '8',
    '1..1024',
    'Target name lookups in flight at once; beyond it a relay to a name (not an IP) is refused 503 `too many name lookups in progress`. A lookup holds a thread of libuv\'s pool (shared with file and crypto work) until the system resolver answers or gives up, which can be long after `DNS_TIMEOUT_MS`, so keep it below `UV_THREADPOOL_SIZE` (16 in the image, else 4).',
    int(1, 1024),
  ),
  dnsMaxLookupsPerIp: spec(
    'DNS_MAX_LOOKUPS_PER_IP',
    '2',
    '1..1024',
    'Target name lookups one client IP (an IPv6 client: per `IPV6_LIMIT_PREFIX`) may have in flight, counted until the resolver answers or gives up; beyond it 429 `too many name lookups from this IP`. Relays to a name already being looked up share that lookup and are not counted again.',
    int(1, 1024),
  ),
  handshakeTimeoutMs: spec(
    'HANDSHAKE_TIMEOUT_MS',
    '10000',
    '1000..120000',
    'Time a client has to send complete request headers (slowloris bound), ms.',
    int(1000, 120000),
  ),
  maxHeaderBytes: spec(
    'MAX_HEADER_BYTES',
    '16384',
    '1024..131072',
    'Request heads must be smaller than this, as Node counts them (the request target, header names and values; not the whitespace and line breaks between them): one of this size or larger is answered 431 (414 when the request target alone reaches it), as is a head of more than 200 header fields. A head still arriving after `HANDSHAKE_TIMEOUT_MS` gets 408.',
    int(1024, 131072),
  ),
  pingIntervalMs: spec(
    'PING_INTERVAL_MS',
    '30000',
    '1000..600000',
    'WebSocket keepalive ping interval; a peer missing two pongs, and sending nothing meanwhile, is terminated (ten while the proxy has paused reading it), ms.',
    int(1000, 600000),
  ),
  maxMessageBytes: spec(
    'MAX_MESSAGE_BYTES',
    String(4 * MiB),
    '1024..268435456',
    'Largest WebSocket message accepted from a client; larger closes with 1009.',
    int(1024, 256 * MiB),
  ),
  maxConnectionS: spec(
    'MAX_CONNECTION_S',
    '0',
    '0..31536000 (0 = unlimited)',
    'Relays and tunnels older than this are closed with 4408.',
    int(0, 31_536_000),
  ),
  shutdownTimeoutMs: spec(
    'SHUTDOWN_TIMEOUT_MS',
    '30000',
    '0..3600000',
    'On SIGTERM, how long live relays may keep running before they are closed with 1001, ms.',
    int(0, 3_600_000),
  ),
  metricsPort: spec(
    'METRICS_PORT',
    '',
    '0..65535 (0: any free port, logged), or empty for the main port',
    'Serve /metrics on a separate listener (kept off the public port).',
    // Set but blank: read as empty it would serve /metrics on the public port.
    (raw: string, name: string): number | null => (raw === '' ? null : int(0, 65535)(raw, name)),
  ),
  tunnelDomain: spec(
    'TUNNEL_DOMAIN',
    '',
    'a DNS name such as tunnel.example.com, or empty',
    'Domain whose subdomains route HTTP to tunnels. Empty: no HTTP tunnels (tunnelUrl is empty).',
    (raw: string, name: string): string => {
      const v = raw.trim().toLowerCase().replace(/\.$/, '');
      // A lone "." or blanks would read as empty (tunnels off); an IP address has no subdomains to route.
      const notName = v === '' ? raw !== '' : !/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(v) || isIP(v) !== 0;
      if (notName) fail(name, `is "${raw}", not a DNS name`, 'a DNS name such as tunnel.example.com');
      return v;
    },
  ),
  tunnelPublicScheme: spec(
    'TUNNEL_PUBLIC_SCHEME',
    'https',
    'https or http',
    'Scheme of the tunnel URLs handed to clients.',
    oneOf(['https', 'http'] as const),
  ),
  tunnelPortMin: spec('TUNNEL_PORT_MIN', '10000', '1..65535', 'First raw TCP tunnel port.', int(1, 65535)),
  tunnelPortMax: spec('TUNNEL_PORT_MAX', '10100', '1..65535', 'Last raw TCP tunnel port.', int(1, 65535)),
  tunnelBindHost: spec(
    'TUNNEL_BIND_HOST',
    '0.0.0.0',
    'an IP address (IPv6 with or without brackets)',
    'Address raw tunnel ports listen on.',
    (raw: string, name: string): string => {
      // As for BIND_HOST: env files write IPv6 as URLs do, in brackets; the listener wants the bare address.
      const v = raw.trim().replace(/^\[(.*)\]$/, '$1');
      if (isIP(v) === 0) fail(name, `is "${raw}", not an IP address`, 'an IP address such as 0.0.0.0, ::, 127.0.0.1 or [::1]');
      return v;
    },
  ),
  tunnelTcpEnabled: spec('TUNNEL_TCP_ENABLED', 'true', 'true or false (also 1/0, yes/no, on/off; any case)', 'Give tunnels a raw TCP port.', bool),
  maxTunnelsPerUser: spec('MAX_TUNNELS_PER_USER', '5', '1..10000', 'Concurrent tunnels per user. Not applied with authentication off (one `anonymous` user).', int(1, 10000)),
  maxTunnelHttpPerIp: spec(
    'MAX_TUNNEL_HTTP_PER_IP',
    '50',
    '1..100000',
    'Concurrent HTTP requests per source IP into tunnels (an IPv6 source: per `IPV6_LIMIT_PREFIX`).',
    int(1, 100000),
  ),
  maxTunnelTcpConnsGlobal: spec(
    'MAX_TUNNEL_TCP_CONNS_GLOBAL',
    '1000',
    '1..1000000',
    'Raw TCP tunnel connections over all tunnels.',
    int(1, 1_000_000),
  ),
  maxTunnelTcpConnsPerTunnel: spec(
    'MAX_TUNNEL_TCP_CONNS_PER_TUNNEL',
    '100',
    '1..100000',
    'Raw TCP connections per tunnel.',
    int(1, 100000),
  ),
  maxTunnelTcpConnsPerIp: spec(
    'MAX_TUNNEL_TCP_CONNS_PER_IP',
    '100',
    '1..100000',
    'Raw TCP tunnel connections per source IP, over all tunnel ports of a replica (an IPv6 source: per `IPV6_LIMIT_PREFIX`).',
    int(1, 100000),
  ),
  tunnelMaxBodyBytes: spec(
    'TUNNEL_MAX_BODY_BYTES',
    String(10 * MiB),
    '0..1073741824',
    'Largest HTTP request body forwarded into a tunnel (413 beyond).',
    int(0, 1024 * MiB),
  ),
  tunnelV1BodyBufferBytes: spec(
    'TUNNEL_V1_BODY_BUFFER_BYTES',
    String(256 * MiB),
    '1048576..17179869184, at least the largest v1 body (TUNNEL_MAX_BODY_BYTES, at most 256 MiB)',
    'Tunnel protocol v1 holds each request body whole until it has arrived, and each response whole until its requester has taken it: the most all v1 tunnels together hold, one requester address (an IPv6 requester: per `IPV6_LIMIT_PREFIX`) an eighth of it or one largest body (503 beyond).',
    int(MiB, 16 * 1024 * MiB),
  ),
  tunnelRequesterStallMs: spec(
    'TUNNEL_REQUESTER_STALL_MS',
    '60000',
    '1000..3600000',
    'Time a tunnel requester may stall before it is dropped: leave HTTP response bytes unread, send no request body bytes while the proxy reads (408), or, on the raw TCP port after its FIN, get no byte from the client, ms.',
    int(1000, 3_600_000),
  ),
  tunnelResponseTimeoutMs: spec(
    'TUNNEL_RESPONSE_TIMEOUT_MS',
    '60000',
    '100..3600000',
    'Time a tunnel has to answer an HTTP request (504 beyond), ms.',
    int(100, 3_600_000),
  ),
  tunnelV2WindowBytes: spec(
    'TUNNEL_V2_WINDOW_BYTES',
    String(MiB),
    '262144..16777216',
    'Tunnel protocol v2: credit the proxy grants per stream (the most it holds of one response).',
    int(256 * 1024, 16 * MiB),
  ),
  redisUrl: spec(
    'REDIS_URL',
    '',
    'redis:// or rediss:// URL (password in the URL), or empty',
    'Cluster mode state store. Empty: single node, in memory.',
    (raw: string, name: string): string => {
      // Set but blank: read as empty every replica would run alone, each with the whole of every limit.
      const v = text(raw, name, 'redis:// or rediss:// URL, or empty');
      if (v === '') return '';
      const url = absoluteUrl(v, name, 'redis://host:6379 or rediss://…');
      if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') fail(name, `uses ${url.protocol}`, 'redis:// or rediss://');
      // ioredis reads the path as the database number and sends SELECT NaN for anything else.
      if (!/^\/?(\d{1,9})?$/.test(url.pathname)) fail(name, 'has a path that is not a database number', 'redis://host:6379 or redis://host:6379/<database number>');
      const db = url.searchParams.get('db');
      if (db !== null && !/^\d{1,9}$/.test(db)) fail(name, 'has a db parameter that is not a database number', 'redis://host:6379 or redis://host:6379/<database number>');
      return v;
    },
  ),
  clusterAdvertiseUrl: spec(
    'CLUSTER_ADVERTISE_URL',
    '',
    'http(s) URL, e.g. http://10.1.2.3:8080',
    'How other replicas reach this one (cluster mode).',
    advertiseUrl,
  ),
  clusterSecret: spec('CLUSTER_SECRET', '', 'a string of at least 16 characters', 'Shared secret of replica-to-replica requests.', (raw: string, name: string) =>
    text(raw, name, 'a string of at least 16 characters'),
  ),
  clusterHeartbeatMs: spec(
    'CLUSTER_HEARTBEAT_MS',
    '2000',
    '100..60000',
    'Heartbeat period, ms; a replica is dead after three missed beats (at least 3 s). The same on every replica. A replica whose event loop stalls (GC, CPU throttling) for less than that TTL less one beat (4 s by default) loses nothing; after a longer stall its next beat re-publishes its tunnels (see docs/scaling.md).',
    int(100, 60000),
  ),
  resumeWindowS: spec(
    'RESUME_WINDOW_S',
    '60',
    '0..3600 (0 disables resumption)',
    'How long a resumable relay waits for its client to reattach, seconds.',
    int(0, 3600),
  ),
  resumeBufferBytes: spec(
    'RESUME_BUFFER_BYTES',
    String(1 * MiB),
    '65536..67108864',
    'Unacknowledged bytes a resumable relay keeps for replay.',
    int(65536, 64 * MiB),
  ),
} as const;

type Specs = typeof CONFIG_VARS;
/** The validated configuration. */
export type WsproxyConfig = { readonly [K in keyof Specs]: ReturnType<Specs[K]['parse']> };

/** Variables whose empty value is refused instead of read as unset. */
const EMPTY_REFUSED: ReadonlySet<string> = new Set(['ALLOWED_ORIGINS']);

/** Parses and validates the environment; throws `ConfigError` naming the first bad variable. */
export function parseConfig(env: Env): WsproxyConfig {
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(CONFIG_VARS) as [string, VarSpec<unknown>][]) {
    const raw = env[s.name];
    // An empty value is unset (`MAX_CONNS_PER_IP=` from a template whose variable is unset): the default, as the
    // README says, not a refusal. ALLOWED_ORIGINS keeps its own refusal of an empty list.
    out[key] = s.parse(raw === undefined || (raw === '' && !EMPTY_REFUSED.has(s.name)) ? s.default : raw, s.name);
  }
  const cfg = out as WsproxyConfig;
  if (cfg.tunnelPortMin > cfg.tunnelPortMax) {
    fail('TUNNEL_PORT_MAX', `(${cfg.tunnelPortMax}) is below TUNNEL_PORT_MIN (${cfg.tunnelPortMin})`, 'TUNNEL_PORT_MIN <= TUNNEL_PORT_MAX');
  }
  if (cfg.metricsPort !== null && cfg.metricsPort !== 0 && cfg.metricsPort === cfg.port) {
    fail('METRICS_PORT', `is ${cfg.metricsPort}, the same as PORT`, 'a port other than PORT, 0, or empty to serve /metrics on PORT');
  }
  // In cluster mode another replica may hand a tunnel that port, and this one must listen on it to forward it
  // (a single node only skips the port it holds itself: a warning, see config-warnings).
  const [inPool] = cfg.redisUrl === '' ? [] : listenersInTunnelPool(cfg);
  if (inPool) {
    fail(inPool[0], `is ${inPool[1]}, inside the tunnel port pool TUNNEL_PORT_MIN..TUNNEL_PORT_MAX (${cfg.tunnelPortMin}..${cfg.tunnelPortMax})`, 'a port outside the tunnel pool');
  }
  if (cfg.redisUrl !== '' && cfg.clusterSecret.length < 16) {
    fail('CLUSTER_SECRET', 'is missing or shorter than 16 characters while REDIS_URL is set', 'a string of at least 16 characters');
  }
  if (cfg.tunnelV1BodyBufferBytes < v1MaxBodyBytes(cfg.tunnelMaxBodyBytes)) {
    fail(
      'TUNNEL_V1_BODY_BUFFER_BYTES',
      `(${cfg.tunnelV1BodyBufferBytes}) cannot hold one of the largest v1 request bodies (${v1MaxBodyBytes(cfg.tunnelMaxBodyBytes)}, TUNNEL_MAX_BODY_BYTES up to 256 MiB)`,
      'at least TUNNEL_MAX_BODY_BYTES (or 268435456)',
    );
  }
  // Tunnels across replicas need this replica's address; it can be derived only from a BIND_HOST naming one address.
  if (cfg.redisUrl !== '' && cfg.clusterAdvertiseUrl === '' && listensOnAllInterfaces(cfg.bindHost)) {
    fail(
      'CLUSTER_ADVERTISE_URL',
      'is missing while REDIS_URL is set and BIND_HOST listens on all interfaces',
      'the http(s) URL other replicas reach this one at, e.g. http://10.1.2.3:8080',
    );
  }
  return cfg;
}

/** Whether tokens are checked: `CLERK_JWKS_URL` set. Off, every client is user `anonymous` and per-user limits do not apply. */
export function authEnabled(cfg: Pick<WsproxyConfig, 'clerkJwksUrl'>): boolean {
  return cfg.clerkJwksUrl !== '';
}

/** PORT and METRICS_PORT where they fall inside the raw tunnel port pool (with raw tunnels on). */
export function listenersInTunnelPool(cfg: WsproxyConfig): [string, number][] {
  if (!cfg.tunnelTcpEnabled) return [];
  const listeners: [string, number | null][] = [['PORT', cfg.port], ['METRICS_PORT', cfg.metricsPort]];
  return listeners.filter((l): l is [string, number] => l[1] !== null && l[1] >= cfg.tunnelPortMin && l[1] <= cfg.tunnelPortMax);
}

/** Whether `host` (BIND_HOST, parsed bare) is empty or the unspecified address in any spelling (`0.0.0.0`, `::`, `0:0:0:0:0:0:0:0`, …). */
function listensOnAllInterfaces(host: string): boolean {
  return host === '' || addressRange(host) === 'unspecified';
}
