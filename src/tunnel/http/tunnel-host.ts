import { SUBDOMAIN_RE } from '../state/subdomain.js';

/**
 * How a Host header relates to the tunnel domain:
 * - `other`: not under the tunnel domain (or the apex itself): the app's own routes;
 * - `invalid`: under the domain but not exactly one 16-hex label: 404;
 * - `tunnel`: one tunnel's subdomain.
 */
export type TunnelHostMatch = { readonly kind: 'other' } | { readonly kind: 'invalid' } | { readonly kind: 'tunnel'; readonly subdomain: string };

const OTHER: TunnelHostMatch = { kind: 'other' };
const INVALID: TunnelHostMatch = { kind: 'invalid' };

/**
 * Classifies a Host header against `domain` (lowercase, no trailing dot; empty
 * = no tunnel domain). Case-insensitive; a port and one trailing dot are
 * ignored.
 */
export function matchTunnelHost(host: string | undefined, domain: string): TunnelHostMatch {
  if (!domain || !host) return OTHER;
  let h = host.trim().toLowerCase();
  if (h.startsWith('[')) return OTHER; // an IPv6 literal is never a name under the domain
  const colon = h.lastIndexOf(':');
  let badPort = false;
  if (colon !== -1) {
    const port = h.slice(colon + 1);
    badPort = !/^\d{0,5}$/.test(port) || Number(port) > 65535;
    h = h.slice(0, colon);
  }
  if (h.endsWith('.')) h = h.slice(0, -1);
  const suffix = '.' + domain;
  if (!h.endsWith(suffix)) return OTHER;
  const label = h.slice(0, -suffix.length);
  if (badPort || !SUBDOMAIN_RE.test(label)) return INVALID;
  return { kind: 'tunnel', subdomain: label };
}
