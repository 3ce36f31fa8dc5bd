import type { IncomingMessage } from 'node:http';
import { Inject, Injectable } from '@nestjs/common';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { Refusal } from '../common/refusal.js';
import { AuthService, type AuthIdentity } from '../auth/auth.service.js';
import { LimitsService, type Lease } from '../limits/limits.service.js';
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
 * origin → authentication → extra rules → per-IP/per-user limits.
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

  /** Origin → authentication → extra rules, taking no slot (a reattach holds its session's). */
  async identify(ctx: UpgradeContext): Promise<AuthIdentity> {
    this.checkOrigin(ctx.req);
    const identity = await this.auth.authenticate(ctx.req, ctx.query);
    for (const rule of this.rules) await rule(ctx, identity);
    return identity;
  }

  async admitClient(ctx: UpgradeContext): Promise<AdmittedClient> {
    const identity = await this.identify(ctx);
    const lease = await this.limits.acquire(ctx.clientIp, identity.userId);
    if (ctx.signal.aborted) {
      lease.release();
      throw new Refusal(400, 'client went away', 'bad_request');
    }
    return { identity, lease };
  }
}
