import { Inject, Injectable, Logger, Optional, type OnApplicationBootstrap } from '@nestjs/common';
import { WsproxyEvents } from '../common/events.js';
import type { WsproxyConfig } from '../config/config.schema.js';
import { wsproxyConfig } from '../config/wsproxy.config.js';
import { systemClock, type Clock } from '../common/clock.js';
import { AUTH_CLOCK } from './clock.js';
import { authRefusal, authUnavailable } from './auth-reasons.js';
import { parseJwks, readCappedText, type JwksKey } from './jwks-document.js';
import { importVerificationKey, importVerificationKeys, type VerificationKey } from './jws-verifier.js';

/** A verification key of the JWKS, imported at the fetch for each of JWT_ALGORITHMS. */
interface CachedKey {
  readonly jwk: JwksKey;
  /** null: the key cannot do that algorithm. */
  readonly imported: Map<string, VerificationKey | null>;
}

interface KeySet {
  readonly keys: ReadonlyMap<string, CachedKey>;
  /** Kids of keys skipped because they verify none of JWT_ALGORITHMS: their tokens get 'algorithm not allowed'. */
  readonly unfit: ReadonlySet<string>;
  /** Clock time of the successful fetch that produced this set. */
  readonly fetchedAt: number;
}

/** Why a fetch is wanted; decides whether the cooldown applies. */
type FetchCause = 'initial' | 'expired' | 'unknown-kid' | 'probe';

/** What the cache holds, for health checks and tests. */
export interface JwksStatus {
  readonly keyCount: number;
  readonly fetchedAt: number | null;
  readonly fetchCount: number;
  readonly lastFetchOk: boolean | null;
}

const MAX_JWKS_BYTES = 512 * 1024;
/** Entries named in one log line about a fetch (kids loaded, keys skipped); the rest are counted. */
const MAX_LOGGED_ENTRIES = 10;

/**
 * The issuer's signing keys (`CLERK_JWKS_URL`), fetched and cached.
 *
 * - Keys are used for `JWKS_CACHE_TTL_S` after a successful fetch; the first
 *   lookup after that waits for a refetch, so a key removed from the JWKS stops
 *   being accepted once the TTL has passed.
 * - An unknown `kid` triggers a refetch at most once per
 *   `JWKS_REFETCH_COOLDOWN_S` (counted from the previous fetch attempt); a
 *   failed fetch is retried at most once per cooldown too. Concurrent lookups
 *   share one in-flight fetch.
 * - A fetch that fails (network, timeout `JWKS_FETCH_TIMEOUT_MS`, non-200,
 *   garbage) keeps the cached keys; past their TTL they keep serving, with a
 *   warning, for up to `JWKS_MAX_STALE_S` more. While stale, refetches run in
 *   the background so handshakes do not wait on a dead endpoint.
 * - With no usable keys (never fetched, stale for too long, or a JWKS that
 *   answered with none: the issuer withdrew them all) lookups fail closed
 *   with 503 `authentication unavailable`.
 */
@Injectable()
export class JwksService implements OnApplicationBootstrap {
  private readonly logger = new Logger('JwksService');
  private readonly url: string;
  private readonly ttlMs: number;
  private readonly cooldownMs: number;
  private readonly maxStaleMs: number;
  private readonly timeoutMs: number;
  private readonly algorithms: readonly string[];

  private current: KeySet | null = null;
  private lastAttemptAt: number | null = null;
  private lastAttemptOk: boolean | null = null;
  private inflight: Promise<void> | null = null;
  private fetchCount = 0;

  constructor(
    @Inject(wsproxyConfig.KEY) config: WsproxyConfig,
    @Optional() @Inject(AUTH_CLOCK) private readonly clock: Clock = systemClock,
    // Named explicitly: the union type would reach Nest's metadata as Object, and nothing would be injected.
    @Optional() @Inject(WsproxyEvents) private readonly events: WsproxyEvents | null = null,
  ) {
    this.url = config.clerkJwksUrl;
    this.ttlMs = config.jwksCacheTtlS * 1000;
    this.cooldownMs = config.jwksRefetchCooldownS * 1000;
    this.maxStaleMs = config.jwksMaxStaleS * 1000;
    this.timeoutMs = config.jwksFetchTimeoutMs;
    this.algorithms = [...config.jwtAlgorithms];
  }

  /** Warms the cache at startup without holding startup up; a failure is logged and retried on demand. */
  onApplicationBootstrap(): void {
    if (this.url !== '') void this.refetch('initial');
  }

  /** Fetches the JWKS now unless a fetch is running or the cooldown forbids it; never throws. */
  warmUp(): Promise<void> {
    return this.refetch('initial');
  }

  /**
   * Whether tokens can be verified now: a key set with at least one key, within
   * its TTL plus `JWKS_MAX_STALE_S`. Keys past their TTL, or none, start a
   * background fetch, at most one per cooldown: an idle replica refreshes
   * before its keys stop being usable, and one that no request reaches (an
   * unready one) still recovers.
   */
  canVerify(): boolean {
    const set = this.current;
    if (this.url !== '' && (set === null || set.keys.size === 0 || !this.isFresh(set))) void this.refetch('probe');
    return this.hasUsableKeys();
  }

  /**
   * `canVerify` for readiness: when no key is usable, waits up to `waitMs` for
   * the fetch it starts, so the first probe after the issuer is back answers
   * ready instead of the one after it.
   */
  async readyToVerify(waitMs: number): Promise<boolean> {
    if (this.canVerify()) return true;
    // None running: auth is off, or the cooldown forbade the fetch.
    if (this.inflight === null) return false;
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)));
    await Promise.race([this.inflight, waited]);
    clearTimeout(timer);
    return this.hasUsableKeys();
  }

  private hasUsableKeys(): boolean {
    const set = this.current;
    return set !== null && set.keys.size > 0 && this.isUsable(set);
  }

  status(): JwksStatus {
    return {
      keyCount: this.current?.keys.size ?? 0,
      fetchedAt: this.current?.fetchedAt ?? null,
      fetchCount: this.fetchCount,
      lastFetchOk: this.lastAttemptOk,
    };
  }

  /**
   * The key named `kid`, imported for `alg`. Throws `Refusal(401, 'unknown key')`
   * when the JWKS has no such key, `Refusal(401, 'algorithm not allowed')` when
   * the key is not made for `alg`, and `Refusal(503, …)` when no keys are usable.
   */
  async getKey(kid: string, alg: string): Promise<VerificationKey> {
    if (this.url === '') throw authUnavailable();
    let set = this.current;
    if (set !== null && this.isFresh(set)) {
      if (!set.keys.has(kid) && !set.unfit.has(kid)) await this.refetch('unknown-kid');
    } else if (set !== null && this.failedSinceExpiry(set) && this.isUsable(set)) {
      // Already serving stale keys (a refetch past the TTL failed): retry in the background, answer now.
      void this.refetch('expired');
    } else {
      await this.refetch(set === null ? 'initial' : 'expired');
    }

    set = this.current;
    // A JWKS that answered with no usable key withdrew the old ones: nothing verifies.
    if (set === null || !this.isUsable(set) || set.keys.size === 0) throw authUnavailable();
    const entry = set.keys.get(kid);
    if (entry === undefined) throw authRefusal(set.unfit.has(kid) ? 'algorithm not allowed' : 'unknown key');
    return this.importFor(entry, alg);
  }

  private isFresh(set: KeySet): boolean {
    return this.clock.now() < set.fetchedAt + this.ttlMs;
  }

  private isUsable(set: KeySet): boolean {
    return this.clock.now() < set.fetchedAt + this.ttlMs + this.maxStaleMs;
  }

  /**
   * Whether a fetch was attempted since the current keys' TTL ran out and
   * failed: only then are they being served stale. A fetch that failed while
   * they were still fresh (an unknown-kid refetch) does not make them
   * stale: the first lookup past the TTL still waits for a refetch, so a key
   * removed from the JWKS stops being accepted once the TTL has passed.
   */
  private failedSinceExpiry(set: KeySet): boolean {
    return this.lastAttemptOk === false && this.lastAttemptAt !== null && this.lastAttemptAt >= set.fetchedAt + this.ttlMs;
  }

  private mayFetch(cause: FetchCause): boolean {
    if (this.lastAttemptAt === null) return true;
    // The TTL running out is not a flood: the first refetch after it runs at once, whatever failed before it.
    if (cause === 'expired') {
      const set = this.current;
      if (this.lastAttemptOk === true || (set !== null && this.lastAttemptAt < set.fetchedAt + this.ttlMs)) return true;
    }
    return this.clock.now() - this.lastAttemptAt >= this.cooldownMs;
  }

  /** Joins the running fetch, or starts one if allowed. Never rejects. */
  private refetch(cause: FetchCause): Promise<void> {
    if (this.inflight !== null) return this.inflight;
    if (!this.mayFetch(cause)) return Promise.resolve();
    this.lastAttemptAt = this.clock.now();
    this.inflight = this.fetchAndStore().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  private async fetchAndStore(): Promise<void> {
    this.fetchCount++;
    try {
      const { keys, unfit } = await this.fetchKeys();
      const previous = this.current;
      this.current = { keys, unfit, fetchedAt: this.clock.now() };
      this.lastAttemptOk = true;
      this.events?.emit('jwks.fetch', { ok: true });
      if (keys.size === 0) {
        this.logger.warn('JWKS holds no usable signing key: authentication answers 503 until it does');
      } else if (previous === null || !sameKids(previous.keys, keys)) {
        this.logger.log(`JWKS loaded: ${keys.size} key(s), kids ${listed([...keys.keys()])}`);
      }
    } catch (err) {
      this.lastAttemptOk = false;
      this.events?.emit('jwks.fetch', { ok: false });
      const why = err instanceof Error ? err.message : String(err);
      const set = this.current;
      if (set !== null && this.isUsable(set)) {
        const ageS = Math.round((this.clock.now() - set.fetchedAt) / 1000);
        this.logger.warn(`JWKS fetch failed (${why}); keeping the cached keys (fetched ${ageS}s ago)`);
      } else {
        this.logger.warn(`JWKS fetch failed (${why}); no usable keys, authentication answers 503`);
      }
    }
  }

  private async fetchKeys(): Promise<{ keys: Map<string, CachedKey>; unfit: Set<string> }> {
    let res: Response;
    try {
      res = await fetch(this.url, {
        signal: AbortSignal.timeout(this.timeoutMs),
        redirect: 'error',
        headers: { accept: 'application/json' },
      });
    } catch (err) {
      throw new Error(describeFetchError(err, this.timeoutMs));
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => undefined);
      throw new Error(`HTTP ${res.status}`);
    }
    let text: string;
    try {
      text = await readCappedText(res, MAX_JWKS_BYTES);
    } catch (err) {
      throw new Error(describeFetchError(err, this.timeoutMs));
    }
    // A key that cannot verify any of JWT_ALGORITHMS (wrong type, curve or alg, too short) is not a
    // usable key: with none left, authentication answers 503 and readiness is down, not 401 for everyone.
    const imported = new Map<JwksKey, Map<string, VerificationKey | null>>();
    const unfit = new Set<string>();
    const { keys, skipped } = parseJwks(text, (jwk) => {
      const forAlgs = importVerificationKeys(jwk, this.algorithms);
      if (![...forAlgs.values()].some((k) => k !== null)) {
        unfit.add(jwk.kid);
        return `kid ${JSON.stringify(jwk.kid)}: verifies none of JWT_ALGORITHMS (${this.algorithms.join(', ')})`;
      }
      imported.set(jwk, forAlgs);
      return null;
    });
    // One line per fetch: a JWKS of 512 KiB holds 170 000 `{}` entries, and a client naming unknown kids refetches it every cooldown.
    if (skipped.length > 0) this.logger.warn(`JWKS: ${skipped.length} key(s) skipped: ${listed(skipped, '; ')}`);
    const usable = new Map(keys.map((jwk) => [jwk.kid, { jwk, imported: imported.get(jwk)! }]));
    for (const kid of usable.keys()) unfit.delete(kid);
    return { keys: usable, unfit };
  }

  private importFor(entry: CachedKey, alg: string): VerificationKey {
    let key = entry.imported.get(alg);
    if (key === undefined) {
      // Wrong type or curve, a JWK `alg` naming another algorithm (e.g. an RSA key named by an ES256 token).
      key = importVerificationKey(entry.jwk, alg);
      entry.imported.set(alg, key);
    }
    if (key === null) throw authRefusal('algorithm not allowed');
    return key;
  }
}

function sameKids(a: ReadonlyMap<string, unknown>, b: ReadonlyMap<string, unknown>): boolean {
  if (a.size !== b.size) return false;
  for (const k of a.keys()) if (!b.has(k)) return false;
  return true;
}

/** `items` joined, the first `MAX_LOGGED_ENTRIES` of them, with how many more there are. */
function listed(items: readonly string[], separator = ', '): string {
  const shown = items.slice(0, MAX_LOGGED_ENTRIES).join(separator);
  return items.length > MAX_LOGGED_ENTRIES ? `${shown}${separator}and ${items.length - MAX_LOGGED_ENTRIES} more` : shown;
}

function describeFetchError(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return `timed out after ${timeoutMs} ms`;
  }
  const cause = err instanceof Error ? (err.cause as { code?: string; message?: string } | undefined) : undefined;
  if (cause?.code) return cause.code;
  if (cause?.message) return cause.message;
  return err instanceof Error ? err.message : String(err);
}
