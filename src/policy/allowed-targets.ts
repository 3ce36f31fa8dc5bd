import { ConfigError } from '../config/config.schema.js';
import { canonicalAddress, cidrContains, mappedCidrToIPv4, parseCidr, parseIpLiteral, toWords, type Cidr } from './ip.js';

/** One `ALLOWED_TARGETS` entry: a range of addresses and an inclusive port range. */
export interface AllowedTarget {
  readonly cidr: Cidr;
  readonly portLo: number;
  readonly portHi: number;
  /** The entry in canonical form, e.g. `10.0.0.0/8:22-2222`, `[::/0]:22`. */
  readonly text: string;
}

const ACCEPTED = 'comma-separated `CIDR`, `CIDR:port` or `CIDR:lo-hi`; IPv6 as `[CIDR]:port`, e.g. 0.0.0.0/0:22,[::/0]:22';

/**
 * Parses `ALLOWED_TARGETS`: comma-separated `CIDR`, `CIDR:port`, `CIDR:lo-hi`;
 * IPv6 as `[CIDR]`, `[CIDR]:port`, `[CIDR]:lo-hi` or a bare IPv6 CIDR without
 * port. A bare address counts as a single-host CIDR. An empty value is an empty
 * list (no allowlist). Throws `ConfigError` naming the first bad entry.
 */
export function parseAllowedTargets(raw: string, name = 'ALLOWED_TARGETS'): AllowedTarget[] {
  const out: AllowedTarget[] = [];
  for (const entry of raw.split(',').map((s) => s.trim())) {
    if (entry === '') continue;
    out.push(...parseEntry(entry, name));
  }
  // Set but without entries (`,`, ` `): read as empty it would allow every target.
  if (out.length === 0 && raw !== '') throw new ConfigError(name, `is "${raw}", a list without entries`, ACCEPTED);
  return out;
}

function parseEntry(entry: string, name: string): AllowedTarget[] {
  const bad = (why: string): never => {
    throw new ConfigError(name, `has "${entry}": ${why}`, ACCEPTED);
  };
  let cidrText: string;
  let portText: string | null = null;
  if (entry.startsWith('[')) {
    const close = entry.indexOf(']');
    if (close < 0) bad('missing "]"');
    cidrText = entry.slice(1, close);
    const rest = entry.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) bad('expected ":port" after "]"');
      portText = rest.slice(1);
    }
    if (!cidrText.includes(':')) bad('brackets are for IPv6 only');
  } else {
    const colons = entry.split(':').length - 1;
    if (colons === 1) [cidrText, portText] = entry.split(':');
    else if (colons === 0) cidrText = entry;
    else {
      cidrText = entry;
      // A bare IPv6 CIDR followed by a port (`2001:db8::/32:22`) is ambiguous to read.
      if (/\/\d+:/.test(entry)) bad('an IPv6 CIDR with a port must be bracketed, e.g. [2001:db8::/32]:22');
    }
  }
  let cidr: Cidr;
  try {
    cidr = parseCidr(cidrText);
  } catch (err) {
    return bad((err as Error).message.replace(/^"[^"]*" /, ''));
  }
  let portLo = 1;
  let portHi = 65535;
  if (portText !== null) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(portText);
    if (!m) return bad(`port "${portText}" is not a port or lo-hi range`);
    portLo = Number(m[1]);
    portHi = m[2] === undefined ? portLo : Number(m[2]);
    if (portLo < 1 || portHi > 65535 || portLo > portHi) return bad(`port range "${portText}" is not within 1..65535 with lo <= hi`);
  }
  const targets = [target(cidr, portLo, portHi, portText !== null)];
  // `[::ffff:10.0.0.0/104]:22` also admits 10.0.0.0/8 as dialled over IPv4.
  const asV4 = mappedCidrToIPv4(cidr);
  if (asV4) targets.push(target(asV4, portLo, portHi, portText !== null));
  return targets;
}

function target(cidr: Cidr, portLo: number, portHi: number, hasPort: boolean): AllowedTarget {
  const ports = !hasPort ? '' : portLo === portHi ? `:${portLo}` : `:${portLo}-${portHi}`;
  const text = cidr.family === 6 && hasPort ? `[${cidr.text}]${ports}` : `${cidr.text}${ports}`;
  return { cidr, portLo, portHi, text };
}

/**
 * Whether `address:port` matches an entry. IPv4-mapped IPv6 addresses are
 * matched as their IPv4 address; other IPv6 forms that carry IPv4 (NAT64, 6to4)
 * match only IPv6 entries. An address that is not an IP literal never matches.
 */
export function matches(list: readonly AllowedTarget[], address: string, port: number): boolean {
  const parsed = parseIpLiteral(address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address);
  if (parsed === null) return false;
  const canon = parseIpLiteral(canonicalAddress(parsed).address);
  if (canon === null) return false;
  const ip = toWords(canon);
  return list.some((t) => port >= t.portLo && port <= t.portHi && cidrContains(t.cidr, ip));
}
