/**
 * `ALLOWED_ORIGINS` matcher: `*`, exact origins, a subdomain wildcard
 * (`https://*.example.com` matches any depth of subdomain, not the apex) and a
 * port wildcard (`http://localhost:*`). A request without `Origin` is not from a
 * browser and passes.
 */
/** One `ALLOWED_ORIGINS` entry other than `*`: scheme://[*.]host[:port|:*][/], the host a name, an IPv4 address or a bracketed IPv6 literal. */
const ORIGIN_ENTRY = /^([a-z][a-z0-9+.-]*):\/\/(\*\.)?(\[[0-9a-f:.]+\]|[^/:\s[\]]+)(?::(\*|\d+))?\/?$/i;

/** A port as a browser writes it in Origin: 1–65535, no leading zero. */
const ORIGIN_PORT = /^[1-9]\d{0,4}$/;

/**
 * Whether `entry` is something the matcher understands and some browser origin
 * can match (config validation refuses the rest): a `*` anywhere but a leading
 * `*.` would be read as part of the host name, and a port a browser never
 * writes (0, over 65535, a leading zero) or a host with a trailing dot is in
 * no origin, so any of them would turn every browser away without a word.
 */
export function isOriginEntry(entry: string): boolean {
  if (entry === '*') return true;
  const m = ORIGIN_ENTRY.exec(entry);
  if (!m) return false;
  const [, , , host, port] = m;
  if (host!.includes('*') || host!.endsWith('.')) return false;
  if (port !== undefined && port !== '*' && !(ORIGIN_PORT.test(port) && Number(port) <= 65535)) return false;
  return URL.canParse(`http://${host}`);
}

const DEFAULT_PORTS: Readonly<Record<string, string>> = { http: '80', https: '443', ws: '80', wss: '443' };

export class OriginPolicy {
  private readonly any: boolean;
  private readonly exact = new Set<string>();
  private readonly patterns: { scheme: string; hostSuffix: string | null; host: string | null; anyPort: boolean; port: string }[] = [];

  constructor(allowed: readonly string[]) {
    this.any = allowed.includes('*');
    for (const entry of allowed) {
      if (entry === '*') continue;
      const m = ORIGIN_ENTRY.exec(entry);
      if (!m) continue;
      const [, scheme, wildcardHost, host, port] = m;
      if (!wildcardHost && port !== '*') {
        this.exact.add(normalizeOrigin(entry));
        continue;
      }
      this.patterns.push({
        scheme: scheme.toLowerCase(),
        // As the URL parser writes it, which is how `allows` reads the origin: punycode for a non-ASCII name.
        hostSuffix: wildcardHost ? '.' + canonicalHost(host) : null,
        host: wildcardHost ? null : canonicalHost(host),
        anyPort: port === '*',
        // Browsers leave a scheme's default port out of Origin (https://a.example.com, never :443).
        port: port && port !== '*' && port !== DEFAULT_PORTS[scheme.toLowerCase()] ? port : '',
      });
    }
  }

  allows(origin: string | undefined): boolean {
    if (origin === undefined) return true;
    if (this.any) return true;
    const normalized = normalizeOrigin(origin);
    if (this.exact.has(normalized)) return true;
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      return false;
    }
    const scheme = url.protocol.replace(/:$/, '');
    const host = url.hostname.toLowerCase();
    return this.patterns.some(
      (p) =>
        p.scheme === scheme &&
        (p.hostSuffix ? host.endsWith(p.hostSuffix) && host.length > p.hostSuffix.length : host === p.host) &&
        (p.anyPort || url.port === p.port),
    );
  }
}

function normalizeOrigin(origin: string): string {
  try {
    const u = new URL(origin);
    return `${u.protocol}//${u.host}`.toLowerCase();
  } catch {
    return origin.toLowerCase();
  }
}

/** A host as the WHATWG URL parser writes it (what `allows` compares with): `[0:0::1]` is `[::1]`, `EXAMPLE.com` is `example.com`. */
function canonicalHost(host: string): string {
  try {
    return new URL(`http://${host}`).hostname;
  } catch {
    return host.toLowerCase();
  }
}
