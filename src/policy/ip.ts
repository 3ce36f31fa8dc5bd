import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * IP helpers shared by the blocklist, the allowlist and the host parser.
 *
 * Addresses are handled as 32-bit words (one for IPv4, four for IPv6) so a CIDR
 * check is a few integer comparisons; CIDRs are parsed and masked once.
 */

export type Family = 4 | 6;

/** A parsed IP address: its family and its bits as big-endian 32-bit words. */
export interface IpWords {
  readonly family: Family;
  readonly words: readonly number[];
}

/** A parsed, masked CIDR. */
export interface Cidr extends IpWords {
  readonly bits: number;
  /** Canonical text, e.g. `10.0.0.0/8`, `fe80::/10`. */
  readonly text: string;
}

/**
 * Parses an IP literal: strict IPv6 (as `inet_pton` accepts it, no zone, no
 * brackets), or IPv4 in any form `inet_aton` accepts (`127.0.0.1`, `127.1`,
 * `0x7f.1`, `0177.0.0.1`, `2130706433`). Null when it is not one.
 */
export function parseIpLiteral(text: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  const s = text.toLowerCase();
  if (s.includes(':')) {
    if (s.includes('%') || isIP(s) !== 6) return null;
    // ipaddr.js reads `::1.2.3.4` as `::ffff:1.2.3.4`; spell the dotted tail in hex first.
    return ipaddr.IPv6.parse(dottedTailToHex(s));
  }
  if (!/^[0-9a-fx.]+$/.test(s) || !ipaddr.IPv4.isValid(s)) return null;
  return ipaddr.IPv4.parse(s);
}

function dottedTailToHex(s: string): string {
  const m = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (!m) return s;
  const [a, b, c, d] = [m[2], m[3], m[4], m[5]].map(Number);
  return `${m[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
}

/**
 * The address a socket actually talks to, as text: IPv4-mapped IPv6
 * (`::ffff:a.b.c.d`) becomes the IPv4 address, everything else its canonical form.
 */
export function canonicalAddress(addr: ipaddr.IPv4 | ipaddr.IPv6): { address: string; family: Family } {
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
    return { address: (addr as ipaddr.IPv6).toIPv4Address().toString(), family: 4 };
  }
  return { address: addr.toString(), family: addr.kind() === 'ipv4' ? 4 : 6 };
}

/** Big-endian 32-bit words of an address. */
export function toWords(addr: ipaddr.IPv4 | ipaddr.IPv6): IpWords {
  const bytes = addr.toByteArray();
  const words: number[] = [];
  for (let i = 0; i < bytes.length; i += 4) {
    words.push(((bytes[i] << 24) | (bytes[i + 1] << 16) | (bytes[i + 2] << 8) | bytes[i + 3]) >>> 0);
  }
  return { family: bytes.length === 4 ? 4 : 6, words };
}

function maskOf(bits: number, wordIndex: number): number {
  const b = Math.min(32, Math.max(0, bits - 32 * wordIndex));
  return b === 0 ? 0 : (0xffffffff << (32 - b)) >>> 0;
}

/**
 * Parses `addr/bits` or a bare address (a host route) written in the strict
 * standard form (`10.0.0.0/8`, `fc00::/7`); legacy IPv4 spellings such as
 * `10/8` are refused because they mean something else than they seem
 * (`10` is 0.0.0.10). Throws `Error` with a short message when invalid.
 */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const bitsText = slash < 0 ? null : text.slice(slash + 1);
  if (isIP(addrText) === 0) throw new Error(`"${text}" is not an IP address or CIDR`);
  const addr = parseIpLiteral(addrText);
  if (addr === null) throw new Error(`"${text}" is not an IP address or CIDR`);
  const max = addr.kind() === 'ipv4' ? 32 : 128;
  let bits = max;
  if (bitsText !== null) {
    if (!/^\d{1,3}$/.test(bitsText) || Number(bitsText) > max) throw new Error(`"${text}" has a bad prefix length`);
    bits = Number(bitsText);
  }
  return makeCidr(toWords(addr), bits);
}

/** A CIDR from words and a prefix length; host bits are cleared. */
export function makeCidr(ip: IpWords, bits: number): Cidr {
  const words = ip.words.map((w, i) => (w & maskOf(bits, i)) >>> 0);
  return { family: ip.family, words, bits, text: `${wordsToString(ip.family, words)}/${bits}` };
}

function wordsToString(family: Family, words: readonly number[]): string {
  const bytes: number[] = [];
  for (const w of words) bytes.push(w >>> 24, (w >>> 16) & 0xff, (w >>> 8) & 0xff, w & 0xff);
  return ipaddr.fromByteArray(bytes).toString();
}

/** Whether `cidr` contains the address. */
export function cidrContains(cidr: Cidr, ip: IpWords): boolean {
  if (cidr.family !== ip.family) return false;
  for (let i = 0; i < cidr.words.length; i++) {
    const mask = maskOf(cidr.bits, i);
    if (mask === 0) return true;
    if (((ip.words[i] & mask) >>> 0) !== cidr.words[i]) return false;
  }
  return true;
}

/** Whether `outer` holds every address of `inner`. */
export function cidrCovers(outer: Cidr, inner: Cidr): boolean {
  return outer.family === inner.family && outer.bits <= inner.bits && cidrContains(outer, inner);
}

/**
 * The IPv4 address an IPv6 address carries to an IPv4 host, as one word, or null:
 * IPv4-mapped `::ffff:0:0/96`, IPv4-compatible `::/96`, IPv4-translated
 * `::ffff:0:0:0/96` (SIIT), NAT64 `64:ff9b::/96` (last 32 bits) and 6to4
 * `2002::/16` (bits 16..48).
 */
export function embeddedIPv4(ip: IpWords): number | null {
  if (ip.family !== 6) return null;
  const [w0, w1, w2, w3] = ip.words;
  if (w0 === 0 && w1 === 0 && (w2 === 0xffff || w2 === 0)) return w3;
  if (w0 === 0 && w1 === 0 && w2 === 0xffff0000) return w3;
  if (w0 === 0x0064ff9b && w1 === 0 && w2 === 0) return w3;
  if (w0 >>> 16 === 0x2002) return (((w0 & 0xffff) << 16) | (w1 >>> 16)) >>> 0;
  return null;
}

/**
 * An IPv6 CIDR written in IPv4-mapped form (`::ffff:10.0.0.0/104`) as the IPv4
 * CIDR it denotes, or null.
 */
export function mappedCidrToIPv4(cidr: Cidr): Cidr | null {
  if (cidr.family !== 6 || cidr.bits < 96) return null;
  const [w0, w1, w2, w3] = cidr.words;
  if (w0 !== 0 || w1 !== 0 || w2 !== 0xffff) return null;
  return makeCidr({ family: 4, words: [w3] }, cidr.bits - 96);
}
