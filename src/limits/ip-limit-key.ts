import ipaddr from 'ipaddr.js';

/**
 * The key a client's address is counted under by the per-IP limits. An IPv6
 * client is assigned a whole prefix (a /64 at least, RFC 6177) and can take a
 * new address from it for every connection: counted per address, it would
 * have no limit at all. So an IPv6 address counts as its prefix of
 * `v6PrefixLength` bits (`2001:db8:1:2::/64`), 128 meaning the address alone;
 * an IPv4 address, IPv4-mapped ones included, counts alone. A value that is no
 * address is its own key.
 */
export function ipLimitKey(ip: string, v6PrefixLength: number): string {
  // IPv4, the common case, with no parsing.
  if (!ip.includes(':')) return ip;
  let address: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    address = ipaddr.process(ip);
  } catch {
    return ip;
  }
  if (address.kind() === 'ipv4' || v6PrefixLength >= 128) return address.toString();
  const bytes = address.toByteArray();
  for (let i = 0; i < bytes.length; i++) {
    const keep = v6PrefixLength - i * 8;
    if (keep <= 0) bytes[i] = 0;
    else if (keep < 8) bytes[i]! &= (0xff << (8 - keep)) & 0xff;
  }
  return `${ipaddr.fromByteArray(bytes).toString()}/${v6PrefixLength}`;
}
