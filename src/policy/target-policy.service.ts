import { Inject, Injectable } from '@nestjs/common';
import { Refusal } from '../common/refusal.js';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { untilClientGone, type GoneSignal } from '../upgrade/client-gone.js';
import { matches, type AllowedTarget } from './allowed-targets.js';
import { BlocklistService } from './blocklist.service.js';
import { parseHost } from './host.js';
import { canonicalAddress, parseIpLiteral, type Family } from './ip.js';
import { ipLimitKey } from '../limits/ip-limit-key.js';
import { LookupGate } from './lookup-gate.js';
import { ResolveTimeoutError, TargetResolver, withinResolveTimeout } from './resolver.js';

/** A checked target: the exact address to dial, its family and the port. */
export interface ResolvedTarget {
  readonly address: string;
  readonly family: Family;
  readonly port: number;
}

/** A decision about one `host:port`: the target to dial, or why not. */
type Decision = ResolvedTarget | { readonly refused: readonly [status: number, reason: string, kind: 'bad_request' | 'blocked' | 'dial'] };

/**
 * Decisions about IP-literal hosts depend on the configuration alone, so they
 * are kept: an SSH relay names the same few targets over and over, and parsing
 * and matching an address was a tenth of what admission allocated. At most
 * this many are kept; then all are forgotten at once.
 */
const LITERAL_DECISIONS = 1024;

/**
 * Admission step 5: turns a requested `host:port` into the one address to dial.
 * The name is resolved once; the target is refused if any address it resolves
 * to is blocked or (with `ALLOWED_TARGETS`) not allowed, and the caller dials
 * the returned address itself, so a second lookup cannot rebind the name.
 */
@Injectable()
export class TargetPolicyService {
  private readonly allowed: readonly AllowedTarget[];
  private readonly literalDecisions = new Map<string, Decision>();
  private readonly lookups: LookupGate;
  private readonly ipv6LimitPrefix: number;
  private readonly dnsTimeoutMs: number;

  constructor(
    @Inject(wsproxyConfig.KEY) config: WsproxyConfigType,
    private readonly blocklist: BlocklistService,
    private readonly resolver: TargetResolver,
  ) {
    this.allowed = config.allowedTargets;
    this.lookups = new LookupGate({ perClient: config.dnsMaxLookupsPerIp, total: config.dnsMaxLookups });
    this.ipv6LimitPrefix = config.ipv6LimitPrefix;
    this.dnsTimeoutMs = config.dnsTimeoutMs;
  }

  /** Name lookups in flight: in all, or charged to `clientIp` (its limit key). */
  lookupsInFlight(clientIp?: string): number {
    return this.lookups.count(clientIp === undefined ? undefined : ipLimitKey(clientIp, this.ipv6LimitPrefix));
  }

  /**
   * Resolves and checks a target for a client at `clientIp`. Rejects with a
   * `Refusal`: 400 malformed host or port, 429 / 503 too many name lookups in
   * flight from `clientIp` / in all, 502 name resolution failed, 504 name
   * resolution timed out, 403 blocked or not allowed. With `gone`, a client that leaves while a name
   * is being looked up is refused at once (`clientWentAway`), so its limit
   * slot is not held until the lookup settles (up to DNS_TIMEOUT_MS).
   */
  async resolveTarget(host: string, port: number, clientIp: string, gone?: GoneSignal): Promise<ResolvedTarget> {
    const key = `${port}/${host}`;
    const known = this.literalDecisions.get(key);
    if (known) return outcome(known);
    const parsed = parseHost(host);
    if (parsed === null) throw new Refusal(400, 'invalid host', 'bad_request');
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Refusal(400, 'invalid port', 'bad_request');
    if (parsed.kind === 'name') {
      const lookup = this.resolve(parsed.name, clientIp);
      return outcome(this.check(await (gone ? untilClientGone(lookup, gone) : lookup), port));
    }
    const decision = this.check([parsed.address], port);
    if (this.literalDecisions.size >= LITERAL_DECISIONS) this.literalDecisions.clear();
    this.literalDecisions.set(key, decision);
    return outcome(decision);
  }

  private check(found: readonly string[], port: number): Decision {
    const addresses: { address: string; family: Family }[] = [];
    for (const a of found) {
      const ip = parseIpLiteral(a);
      // A resolver answer that is not an IP literal cannot be checked: fail closed.
      if (ip === null) return { refused: [403, 'target blocked', 'blocked'] };
      const canon = canonicalAddress(ip);
      if (!addresses.some((x) => x.address === canon.address)) addresses.push(canon);
    }
    if (addresses.length === 0) return { refused: [502, 'name resolution failed', 'dial'] };
    if (addresses.some((a) => this.blocklist.isBlocked(a.address))) return { refused: [403, 'target blocked', 'blocked'] };
    if (this.allowed.length > 0 && !addresses.every((a) => matches(this.allowed, a.address, port))) {
      return { refused: [403, 'target not allowed', 'blocked'] };
    }
    return { address: addresses[0].address, family: addresses[0].family, port };
  }

  private async resolve(name: string, clientIp: string): Promise<string[]> {
    const client = ipLimitKey(clientIp, this.ipv6LimitPrefix);
    // Refused here (429/503) before the lookup starts; the refusal passes through as it is.
    const lookup = this.lookups.run(name, client, (n) => this.resolver.lookup(n));
    try {
      return await withinResolveTimeout(lookup, name, this.dnsTimeoutMs);
    } catch (err) {
      if (err instanceof ResolveTimeoutError) throw new Refusal(504, 'name resolution timed out', 'dial');
      throw new Refusal(502, 'name resolution failed', 'dial');
    }
  }
}

function outcome(decision: Decision): ResolvedTarget {
  if ('refused' in decision) throw new Refusal(...decision.refused);
  return decision;
}
