import type { IncomingMessage } from 'node:http';
import { Inject, Injectable } from '@nestjs/common';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { Refusal } from '../common/refusal.js';
import { AuthService, type AuthIdentity } from '../auth/auth.service.js';
import { LimitsService, type Lease } from '../limits/limits.service.js';
import { clientWentAway, untilClientGone } from './client-gone.js';
import { OriginPolicy } from './origin-policy.js';
import type { UpgradeContext } from './upgrade-route.js';

/**
 * An extra admission check a team can add from its own module (see README):
 * runs after authentication and before limits; throw a `Refusal` to refuse.
 */
export type AdmissionRule = (ctx: UpgradeContext, identity: AuthIdentity) => void | Promise<void>;

/** A client that passed origin, auth, extra rules and limits, holding one slot. */
export interface AdmittedClient {
  readonly identity: AuthIdentity;
  readonly lease: Lease;
}

/**
 * The shared front half of every WebSocket admission (`/relay`, `/tunnel`):
 * a slot of `MAX_CONNECTIONS` → origin → authentication → extra rules →
 * per-IP/per-user limits. The slot comes first so that admissions waiting on
 * the issuer's keys, DNS or a dial can never number more than the cap.
 */
@Injectable()
export class AdmissionService {
  private readonly origins: OriginPolicy;
  private readonly rules: AdmissionRule[] = [];

  constructor(
    @Inject(wsproxyConfig.KEY) config: WsproxyConfigType,
    private readonly auth: AuthService,
    private readonly limits: LimitsService,
  ) {
    this.origins = new OriginPolicy(config.allowedOrigins);
  }

  /** Adds a rule to every admission (extension point for team modules). */
  addRule(rule: AdmissionRule): void {
    this.rules.push(rule);
  }

  checkOrigin(req: IncomingMessage): void {
    const origin = req.headers.origin;
    if (!this.origins.allows(origin)) throw new Refusal(403, 'origin not allowed', 'origin');
  }

  /**
   * Origin → authentication → extra rules for a reattach, which keeps no slot
   * of its own: its session holds one. With `holdSlot` (no live session has
   * the id named) a slot of `MAX_CONNECTIONS` is held while they run, so that
   * reattaches to made-up ids waiting on the issuer's keys count too.
   */
  async identify(ctx: UpgradeContext, holdSlot = true): Promise<AuthIdentity> {
    if (!holdSlot) return this.identifyWhileThere(ctx);
    const releaseSlot = this.limits.takeSlot();
    try {
      return await this.identifyWhileThere(ctx);
    } finally {
      releaseSlot();
    }
  }

  async admitClient(ctx: UpgradeContext): Promise<AdmittedClient> {
    const releaseSlot = this.limits.takeSlot();
    try {
      const identity = await this.identifyWhileThere(ctx);
      const lease = await this.limits.acquire(ctx.clientIp, identity.userId, releaseSlot);
      if (ctx.signal.aborted) {
        lease.release();
        throw clientWentAway();
      }
      return { identity, lease };
    } catch (err) {
      releaseSlot();
      throw err;
    }
  }

  /**
   * Origin → authentication → extra rules; refused as soon as the client goes
   * away, so its slot is not held while the issuer's keys are fetched.
   */
  private identifyWhileThere(ctx: UpgradeContext): Promise<AuthIdentity> {
    this.checkOrigin(ctx.req);
    const identified = this.identifyAsync(ctx);
    // With authentication off and no rules there is nothing to wait for, nor a listener worth adding.
    return this.auth.enabled || this.rules.length > 0 ? untilClientGone(identified, ctx.signal) : identified;
  }

  private async identifyAsync(ctx: UpgradeContext): Promise<AuthIdentity> {
    const identity = await this.auth.authenticate(ctx.req, ctx.query);
    for (const rule of this.rules) await rule(ctx, identity);
    return identity;
  }
}
