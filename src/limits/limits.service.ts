import { Inject, Injectable, Logger } from '@nestjs/common';
import { authEnabled } from '../config/config.schema.js';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { isRefusal, Refusal } from '../common/refusal.js';
import { ipLimitKey } from './ip-limit-key.js';
import { CONNECTION_COUNTER_STORE, type AcquireOutcome, type ConnectionCounterStore } from './connection-counter.store.js';

/** One held connection slot. `release()` is idempotent, so every exit path may call it. */
export interface Lease {
  readonly ip: string;
  readonly user: string;
  release(): void;
}

/**
 * A per-user limit as it applies: `configured` with authentication on; with it
 * off there are no users to tell apart (every client is `anonymous`), so a
 * limit that never binds.
 */
export function perUserLimit(config: Pick<WsproxyConfigType, 'clerkJwksUrl'>, configured: number): number {
  return authEnabled(config) ? configured : Number.MAX_SAFE_INTEGER;
}

/**
 * Per-IP and per-user concurrent connection limits shared by relays and tunnels,
 * and this replica's own cap on the connections it holds (`MAX_CONNECTIONS`).
 * With authentication off every client is user `anonymous`, so only the per-IP
 * limit applies (a per-user one would cap the whole service).
 */
@Injectable()
export class LimitsService {
  private readonly logger = new Logger(LimitsService.name);
  private readonly maxPerUser: number;
  /** Slots of `MAX_CONNECTIONS` taken and not yet given back. */
  private slots = 0;

  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    @Inject(CONNECTION_COUNTER_STORE) private readonly store: ConnectionCounterStore,
  ) {
    this.maxPerUser = perUserLimit(config, config.maxConnsPerUser);
  }

  /** Slots of this replica's `MAX_CONNECTIONS` in use: connections held and admissions in progress. */
  get slotsInUse(): number {
    return this.slots;
  }

  /**
   * Takes one of this replica's `MAX_CONNECTIONS` slots, or throws `Refusal(503)`;
   * the returned function gives it back, once however often it is called. A
   * count in this process even in cluster mode: what it bounds is this
   * replica's own descriptors and memory.
   */
  takeSlot(): () => void {
    if (this.slots >= this.config.maxConnections) throw new Refusal(503, 'proxy at capacity', 'capacity');
    this.slots++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.slots--;
    };
  }

  /**
   * Takes one slot for `ip` (an IPv6 address: its `IPV6_LIMIT_PREFIX`) and `user`, or throws `Refusal(429)`; when the
   * store cannot answer (cluster mode, Redis unreachable), `Refusal(503)`. The lease's
   * release also gives back `slot` (a `takeSlot` of the same admission), which stays
   * the caller's to give back when this throws.
   */
  async acquire(ip: string, user: string, slot: () => void = () => undefined): Promise<Lease> {
    const key = ipLimitKey(ip, this.config.ipv6LimitPrefix);
    let outcome: AcquireOutcome;
    try {
      outcome = await this.store.tryAcquire(key, user, this.config.maxConnsPerIp, this.maxPerUser);
    } catch (err) {
      if (isRefusal(err)) throw err;
      this.logger.debug?.(`counter store unavailable: ${err instanceof Error ? err.message : String(err)}`);
      throw new Refusal(503, 'cluster state unavailable', 'cluster');
    }
    if (outcome === 'ip') throw new Refusal(429, 'too many connections from this IP', 'limit');
    if (outcome === 'user') throw new Refusal(429, 'too many connections for this user', 'limit');
    let released = false;
    return {
      ip,
      user,
      release: () => {
        if (released) return;
        released = true;
        slot();
        this.store.release(key, user).catch((err: unknown) => this.logger.error(`releasing a slot failed: ${String(err)}`));
      },
    };
  }

  snapshot(): ReturnType<ConnectionCounterStore['snapshot']> {
    return this.store.snapshot();
  }
}
