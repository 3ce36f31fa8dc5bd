import type { IncomingMessage } from 'node:http';
import { Inject, Injectable, Logger, Optional, type OnModuleInit } from '@nestjs/common';
import { authEnabled, type WsproxyConfig } from '../config/config.schema.js';
import { wsproxyConfig } from '../config/wsproxy.config.js';
import type { QueryParams } from '../upgrade/query-params.js';
import { authRefusal } from './auth-reasons.js';
import { systemClock, type Clock } from '../common/clock.js';
import { AUTH_CLOCK } from './clock.js';
import { JwksService } from './jwks.service.js';
import { checkClaims, type ClaimRules } from './jwt-claims.js';
import { verifySignature } from './jws-verifier.js';
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
const BASE64URL = /^[A-Za-z0-9_-]*$/;
/** Distinct protected headers kept decoded, and the longest kept (see `rememberHeader`). */
const MAX_KNOWN_HEADERS = 64;
const MAX_KNOWN_HEADER_CHARS = 512;

/** The JSON object in a base64url JWS segment, or null. */
function decodeSegment(segment: string): Record<string, unknown> | null {
  if (!BASE64URL.test(segment)) return null;
  try {
    const v: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

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
  private readonly claimRules: ClaimRules;
  private readonly headers = new Map<string, Readonly<Record<string, unknown>>>();

  constructor(
    @Inject(wsproxyConfig.KEY) config: WsproxyConfig,
    private readonly jwks: JwksService,
    @Optional() @Inject(AUTH_CLOCK) private readonly clock: Clock = systemClock,
  ) {
    this.enabled = authEnabled(config);
    this.algorithms = [...config.jwtAlgorithms];
    this.claimRules = {
      issuer: config.jwtIssuer === '' ? undefined : config.jwtIssuer,
      audience: config.jwtAudience.length === 0 ? undefined : [...config.jwtAudience],
      clockToleranceS: config.jwtClockToleranceS,
    };
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
  async authenticate(req: IncomingMessage, query: QueryParams): Promise<AuthIdentity> {
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

  /**
   * Remembers a protected header whose signature has verified, so the next
   * token with the same header segment skips its base64 decode and JSON parse:
   * an issuer's tokens share a handful (one per key). Only signed headers of
   * ordinary size are kept, so tokens nobody signed cannot flush the cache or
   * pin large strings. Bounded; emptied when full.
   */
  private rememberHeader(segment: string, header: Record<string, unknown>): void {
    if (segment.length > MAX_KNOWN_HEADER_CHARS) return;
    if (this.headers.size >= MAX_KNOWN_HEADERS) this.headers.clear();
    this.headers.set(segment, Object.freeze(header));
  }

  /** Verifies a compact JWS and returns its `sub`. */
  private async verify(token: string): Promise<string> {
    if (token.length > MAX_TOKEN_CHARS) throw authRefusal('token malformed');
    const parts = token.split('.');
    if (parts.length !== 3) throw authRefusal('token malformed');
    const [h, p, s] = parts as [string, string, string];
    const known = this.headers.get(h);
    const header = known ?? decodeSegment(h);
    if (header === null || !BASE64URL.test(s)) throw authRefusal('token malformed');
    // Checked before any key lookup: `none` and HMAC never reach a key.
    if (typeof header.alg !== 'string' || !this.algorithms.includes(header.alg)) {
      throw authRefusal('algorithm not allowed');
    }
    // No extension is understood, so none may be critical (RFC 7515 §4.1.11).
    if (header.crit !== undefined) throw authRefusal('token malformed');
    if (typeof header.kid !== 'string' || header.kid === '') throw authRefusal('unknown key');

    const key = await this.jwks.getKey(header.kid, header.alg);
    if (!verifySignature(key, `${h}.${p}`, Buffer.from(s, 'base64url'))) throw authRefusal('signature invalid');
    if (known === undefined) this.rememberHeader(h, header);
    const payload = decodeSegment(p);
    if (payload === null) throw authRefusal('token malformed');
    return checkClaims(payload, this.claimRules, this.clock.now() / 1000);
  }
}
