import { Inject, Injectable, Logger } from '@nestjs/common';
import { ConfigError } from '../config/config.schema.js';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { cidrContains, cidrCovers, embeddedIPv4, mappedCidrToIPv4, parseCidr, parseIpLiteral, toWords, type Cidr } from './ip.js';

/**
 * The built-in `BLOCKED_TARGETS`: every range that is not public unicast.
 * IPv4 ranges also block the same addresses reached through IPv4-mapped,
 * IPv4-compatible, IPv4-translated (`::ffff:0:0:0/96`), NAT64 (`64:ff9b::/96`)
 * and 6to4 (`2002::/16`) IPv6 addresses.
 */
export const DEFAULT_BLOCKED_TARGETS: readonly string[] = [
  '0.0.0.0/8', // "this network"
  '10.0.0.0/8', // private
  '100.64.0.0/10', // carrier-grade NAT
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local, cloud metadata
  '172.16.0.0/12', // private
  '192.0.0.0/24', // IETF protocol assignments
  '192.0.2.0/24', // documentation (TEST-NET-1)
  '192.168.0.0/16', // private
  '198.18.0.0/15', // benchmarking
  '198.51.100.0/24', // documentation (TEST-NET-2)
  '203.0.113.0/24', // documentation (TEST-NET-3)
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, incl. broadcast 255.255.255.255
  '::/128', // unspecified
  '::1/128', // loopback
  '64:ff9b:1::/48', // local-use NAT64
  '100::/64', // discard-only
  '2001::/32', // Teredo (its relays reach embedded IPv4)
  '2001:2::/48', // benchmarking
  '2001:10::/28', // ORCHID (deprecated)
  '2001:20::/28', // ORCHIDv2
  '2001:db8::/32', // documentation
  '3fff::/20', // documentation (RFC 9637)
  '5f00::/16', // SRv6 SIDs (RFC 9602)
  'fc00::/7', // unique local
  'fe80::/10', // link-local
  'fec0::/10', // deprecated site-local
  'ff00::/8', // multicast
];

/**
 * The ranges of the built-in list through which a relay reaches the proxy's
 * own host (`0.0.0.0` and `::` dial it too) or the cloud metadata service:
 * a `BLOCKED_TARGETS` list that leaves one open is warned about at boot.
 */
export const SELF_AND_METADATA_TARGETS: readonly string[] = ['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '::/128', '::1/128', 'fe80::/10'];

/**
 * Decides whether a target address may never be dialled (`BLOCKED_TARGETS`).
 * `default` uses {@link DEFAULT_BLOCKED_TARGETS}, a list replaces it, `none`
 * blocks nothing (with a warning at startup).
 */
@Injectable()
export class BlocklistService {
  private readonly logger = new Logger(BlocklistService.name);
  private readonly v4: Cidr[] = [];
  private readonly v6: Cidr[] = [];
  private readonly none: boolean;

  constructor(@Inject(wsproxyConfig.KEY) config: WsproxyConfigType) {
    const setting = config.blockedTargets;
    this.none = setting === 'none';
    if (this.none) {
      this.logger.warn('BLOCKED_TARGETS=none: every target address may be dialled, including private and loopback ranges');
      return;
    }
    for (const entry of setting === 'default' ? DEFAULT_BLOCKED_TARGETS : setting) this.add(entry);
  }

  /** The effective ranges, canonical, for logs and diagnostics. */
  get ranges(): string[] {
    return [...this.v4, ...this.v6].map((c) => c.text);
  }

  /**
   * Whether an IP literal is blocked. An IPv6 address carrying an IPv4 address
   * (mapped, compatible, translated, NAT64, 6to4) is also checked as that IPv4 address.
   * Anything that is not an IP literal is blocked (fail closed).
   */
  isBlocked(address: string): boolean {
    if (this.none) return false;
    const addr = parseIpLiteral(address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address);
    if (addr === null) return true;
    const ip = toWords(addr);
    if (ip.family === 4) return this.v4.some((c) => cidrContains(c, ip));
    if (this.v6.some((c) => cidrContains(c, ip))) return true;
    const v4 = embeddedIPv4(ip);
    if (v4 === null) return false;
    const inner = { family: 4 as const, words: [v4] };
    return this.v4.some((c) => cidrContains(c, inner));
  }

  /** Whether every address of `range` (a CIDR in standard form) is blocked. */
  blocksWhole(range: string): boolean {
    if (this.none) return false;
    const inner = parseCidr(range);
    return (inner.family === 4 ? this.v4 : this.v6).some((c) => cidrCovers(c, inner));
  }

  private add(entry: string): void {
    let cidr: Cidr;
    try {
      cidr = parseCidr(entry);
    } catch (err) {
      throw new ConfigError('BLOCKED_TARGETS', (err as Error).message, 'comma-separated IPs/CIDRs in standard form, e.g. 10.0.0.0/8,fc00::/7, or none');
    }
    (cidr.family === 4 ? this.v4 : this.v6).push(cidr);
    const asV4 = mappedCidrToIPv4(cidr);
    if (asV4) this.v4.push(asV4);
  }
}
