import { isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';
import ipaddr from 'ipaddr.js';

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/**
 * A `TRUSTED_PROXIES` entry (an address or a CIDR range) as it is matched
 * against a peer: an IPv4-mapped IPv6 range as the IPv4 range it covers
 * (`::ffff:10.0.0.0/104` → `10.0.0.0/8`), since peers are compared in their
 * IPv4 spelling. Throws on an entry that is neither.
 */
export function trustedProxyRange(entry: string): Range {
  const [range, bits] = entry.includes('/') ? ipaddr.parseCIDR(entry) : ([ipaddr.parse(entry), ipaddr.parse(entry).kind() === 'ipv4' ? 32 : 128] as Range);
  if (range.kind() === 'ipv6' && (range as ipaddr.IPv6).isIPv4MappedAddress()) return [(range as ipaddr.IPv6).toIPv4Address(), Math.max(0, bits - 96)];
  return [range, bits];
}

/** Strips an IPv4-mapped IPv6 prefix so one client has one spelling (`::ffff:1.2.3.4` → `1.2.3.4`). */
export function normalizeIp(address: string): string {
  // Dotted-quad as `isIP` accepts it (no leading zeros) is already canonical: no parse on every request.
  if (isIP(address) === 4) return address;
  if (!ipaddr.isValid(address)) return address;
  return ipaddr.process(address).toString();
}

/**
 * Decides the client IP of a request: the socket's peer address, or — only when
 * that peer is a trusted proxy — the rightmost `X-Forwarded-For` address that
 * is not itself a trusted proxy (else `X-Real-IP`). Proxies append the address
 * they saw to the right; everything to its left came from the client and could
 * be anything, so the walk from the right stops at the first untrusted hop. A
 * malformed entry stops it too, at the last address a trusted proxy vouched for.
 */
export class ClientIpResolver {
  private readonly trusted: Range[];

  constructor(trustedProxies: readonly string[]) {
    this.trusted = trustedProxies.map(trustedProxyRange);
  }

  resolve(req: IncomingMessage): string {
    const peer = normalizeIp(req.socket.remoteAddress ?? '');
    if (this.trusted.length === 0 || !this.isTrusted(peer)) return peer;
    const xff = headerValue(req.headers['x-forwarded-for']);
    if (xff) {
      const hops = xff.split(',');
      let client = peer;
      for (let i = hops.length - 1; i >= 0 && this.isTrusted(client); i--) {
        const hop = hopAddress(hops[i]!.trim());
        if (hop === null) break;
        client = normalizeIp(hop);
      }
      return client;
    }
    const real = headerValue(req.headers['x-real-ip'])?.trim();
    if (real && isIP(real)) return normalizeIp(real);
    return peer;
  }

  private isTrusted(peer: string): boolean {
    if (!ipaddr.isValid(peer)) return false;
    const addr = ipaddr.process(peer);
    return this.trusted.some(([range, bits]) => addr.kind() === range.kind() && addr.match(range, bits));
  }
}

/**
 * The address of an `X-Forwarded-For` hop: an IP, or one with the port some load balancers append
 * (`192.0.2.7:52344`, `[2001:db8::7]:52344`, and `[2001:db8::7]`); null for anything else.
 */
function hopAddress(hop: string): string | null {
  if (isIP(hop)) return hop;
  const m = /^\[([0-9A-Fa-f:.]+)\](?::\d{1,5})?$|^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(hop);
  if (m === null) return null;
  const address = m[1] ?? m[2]!;
  return isIP(address) === (m[1] !== undefined ? 6 : 4) ? address : null;
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
