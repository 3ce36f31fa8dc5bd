import type { IncomingMessage } from 'node:http';
import { Inject, Injectable, Logger, Optional, type OnModuleInit } from '@nestjs/common';
import { decodeProtectedHeader, jwtVerify, type JWTPayload, type ProtectedHeaderParameters } from 'jose';
import type { WsproxyConfig } from '../config/config.schema.js';
import { wsproxyConfig } from '../config/wsproxy.config.js';
import { authRefusal, refusalFromJoseError } from './auth-reasons.js';
import { AUTH_CLOCK, systemClock, type Clock } from './clock.js';
import { JwksService } from './jwks.service.js';
import { extractToken, offeredProtocols, selectResponseProtocol } from './token-carriers.js';

export { selectResponseProtocol, TOKEN_PROTOCOL_PREFIX } from './token-carriers.js';

/** Who a request belongs to. */
export interface AuthIdentity {
  /** The token's `sub`, or `anonymous` while auth is off. Per-user limits count this. */
  readonly userId: string;
  /** Set when the token came in Sec-WebSocket-Protocol: the non-token protocol to answer with. */
  readonly protocol?: string;
}

/** The identity of every request while `CLERK_JWKS_URL` is empty. */
export const ANONYMOUS: AuthIdentity = Object.freeze({ userId: 'anonymous' });

/** Longer than any real JWT; bounds the work spent on garbage. */
const MAX_TOKEN_CHARS = 16 * 1024;
const MAX_SUBJECT_CHARS = 256;

/**
 * The single authentication decision. The WebSocket admission path (`/relay`,
 * `/tunnel`) and `AuthGuard` (HTTP routes) both call `authenticate`.
 */
@Injectable()
export class AuthService implements OnModuleInit {
  private readonly logger = new Logger('AuthService');
  /** True when `CLERK_JWKS_URL` is set. */
  readonly enabled: boolean;
  private readonly algorithms: string[];
  private readonly issuer: string | undefined;
  private readonly audience: string[] | undefined;
  private readonly clockToleranceS: number;

  constructor(
    @Inject(wsproxyConfig.KEY) config: WsproxyConfig,
    private readonly jwks: JwksService,
    @Optional() @Inject(AUTH_CLOCK) private readonly clock: Clock = systemClock,
  ) {
    this.enabled = config.clerkJwksUrl !== '';
    this.algorithms = [...config.jwtAlgorithms];
    this.issuer = config.jwtIssuer === '' ? undefined : config.jwtIssuer;
    this.audience = config.jwtAudience.length === 0 ? undefined : [...config.jwtAudience];
    this.clockToleranceS = config.jwtClockToleranceS;
  }

  onModuleInit(): void {
    if (!this.enabled) {
      this.logger.warn('CLERK_JWKS_URL is empty: authentication is OFF, every client is user "anonymous"');
    }
  }

  /**
   * Authenticates a request (an HTTP request or a WebSocket upgrade).
   * Throws `Refusal(401, reason, 'auth')` or
   * `Refusal(503, 'authentication unavailable', 'auth_unavailable')`.
   */
  async authenticate(req: IncomingMessage, query: URLSearchParams): Promise<AuthIdentity> {
    if (!this.enabled) return ANONYMOUS;
    const found = extractToken(req, query);
    if (found === null) throw authRefusal('token missing');
    const userId = await this.verify(found.token);
    if (found.carrier === 'subprotocol') {
      const protocol = selectResponseProtocol(offeredProtocols(req));
      if (protocol !== false) return { userId, protocol };
    }
    return { userId };
  }

  /** Verifies a compact JWS and returns its `sub`. */
  private async verify(token: string): Promise<string> {
    if (token.length > MAX_TOKEN_CHARS || token.split('.').length !== 3) throw authRefusal('token malformed');
    let header: ProtectedHeaderParameters;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw authRefusal('token malformed');
    }
    // Checked before any key lookup: `none` and HMAC never reach a key.
    if (typeof header.alg !== 'string' || !this.algorithms.includes(header.alg)) {
      throw authRefusal('algorithm not allowed');
    }
    if (typeof header.kid !== 'string' || header.kid === '') throw authRefusal('unknown key');

    const key = await this.jwks.getKey(header.kid, header.alg);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, key, {
        algorithms: this.algorithms,
        issuer: this.issuer,
        audience: this.audience,
        clockTolerance: this.clockToleranceS,
        currentDate: new Date(this.clock.now()),
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      throw refusalFromJoseError(err);
    }
    // jose checks `iat` only with maxTokenAge; a token issued in the future is not valid yet.
    if (payload.iat !== undefined && payload.iat > this.clock.now() / 1000 + this.clockToleranceS) {
      throw authRefusal('token not yet valid');
    }
    const sub = payload.sub;
    if (typeof sub !== 'string' || sub.trim() === '' || sub.length > MAX_SUBJECT_CHARS) {
      throw authRefusal('subject missing');
    }
    return sub;
  }
}
