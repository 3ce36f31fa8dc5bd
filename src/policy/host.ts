import { canonicalAddress, parseIpLiteral } from './ip.js';

/** A parsed `host` query value: an IP literal (canonical text) or a DNS name (lower case). */
export type ParsedHost = { kind: 'ip'; address: string } | { kind: 'name'; name: string };

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Parses the `host` of a relay request. Accepts an IPv6 literal with or without
 * brackets (no zone), an IPv4 literal in any `inet_aton` form (`127.0.0.1`,
 * `127.1`, `0x7f.1`, `0177.0.0.1`, `2130706433`), and RFC 1123 host names (at
 * most 253 characters, an optional trailing dot). IP literals come back in
 * canonical form; IPv4-mapped IPv6 becomes the IPv4 address. Null when
 * malformed, including a name whose last label looks numeric but is not a
 * valid IPv4 address (`1.2.3.4.5`, `08.0.0.1`): resolvers read those differently.
 */
export function parseHost(raw: string | undefined | null): ParsedHost | null {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 255) return null;
  const s = raw.toLowerCase();
  if (s.startsWith('[') || s.endsWith(']')) {
    if (!(s.startsWith('[') && s.endsWith(']'))) return null;
    const inner = s.slice(1, -1);
    if (!inner.includes(':')) return null;
    return ipHost(inner);
  }
  if (s.includes(':')) return ipHost(s);

  const bare = s.endsWith('.') ? s.slice(0, -1) : s;
  const labels = bare.split('.');
  const last = labels[labels.length - 1];
  if (/^(?:\d+|0x[0-9a-f]*)$/.test(last)) return ipHost(bare);
  if (bare.length === 0 || bare.length > 253 || !labels.every((l) => LABEL.test(l))) return null;
  return { kind: 'name', name: s };
}

function ipHost(text: string): ParsedHost | null {
  const addr = parseIpLiteral(text);
  return addr === null ? null : { kind: 'ip', address: canonicalAddress(addr).address };
}

/** Parses the `port` of a relay request: 1..65535 in digits, no leading zero (`022` is no way to write 22). Null otherwise. */
export function parsePort(raw: string | undefined | null): number | null {
  if (typeof raw !== 'string' || !/^[1-9]\d{0,4}$/.test(raw)) return null;
  const n = Number(raw);
  return n >= 1 && n <= 65535 ? n : null;
}
