import { Inject, Injectable } from '@nestjs/common';
import { CoalescedRun } from '../common/coalesced-run.js';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import type { AcquireOutcome, ConnectionCounterStore } from '../limits/connection-counter.store.js';
import { REPLICAS_KEY, SHARE_PREFIX, shareIpKey, shareUserKey } from './cluster-keys.js';
import { continuityMs, livenessTtlMs } from './cluster-settings.js';
import { ClusterRedis } from './cluster-redis.service.js';
import { LocalCounts } from './local-counts.js';
import { ReplicaIdentity } from './replica-identity.js';

/** Thrown by `tryAcquire` when Redis cannot be asked; `LimitsService` answers 503. */
export class ClusterStateUnavailableError extends Error {
  constructor(cause?: unknown) {
    super(`cluster state unavailable${cause instanceof Error ? `: ${cause.message}` : ''}`);
    this.name = 'ClusterStateUnavailableError';
  }
}

/** What one publish (heartbeat) learnt. */
export interface PublishOutcome {
  readonly liveReplicas: number;
  /** How long admissions are still refused after a gap in the cluster state (0: not warming). */
  readonly warmingMs: number;
}

/**
 * Cluster-wide per-IP and per-user counters in Redis.
 *
 * - Admission: one round trip, a script that sums the live replicas' shares,
 *   checks both limits and increments this replica's share atomically.
 * - Release: one round trip; while Redis is unreachable only the local truth
 *   changes, and the next publish corrects Redis.
 * - Publish (every heartbeat, and at once after a reconnect): this replica's
 *   share is rewritten from its local truth, so a Redis restarted empty has
 *   it again within one beat (admissions wait out the warm-up: see
 *   `continuityPrelude`), and a slot miscounted by a lost reply is corrected.
 *
 * Every command goes out on one connection in the order it is issued, and
 * Redis runs them in that order; an admission still in flight is already in
 * the local truth, so a publish sent meanwhile includes it. If Redis then
 * refuses it, the publish over-counted by one and another publish follows.
 */
@Injectable()
export class RedisCounterStore implements ConnectionCounterStore {
  private readonly local = new LocalCounts();
  private readonly ttlMs: number;
  /** The continuity clock's lifetime, the last argument of the scripts that renew it. */
  private readonly clockMs: string;
  private readonly ipKey: string;
  private readonly userKey: string;
  /** Incremented each time a publish is sent. */
  private publishes = 0;
  private readonly publishing = new CoalescedRun(() => this.startPublish());
  /** Told when an admission finds the cluster state warming up (see `onWarming`). */
  private warmingListener: (() => void) | null = null;

  constructor(
    @Inject(wsproxyConfig.KEY) config: WsproxyConfigType,
    private readonly redis: ClusterRedis,
    private readonly identity: ReplicaIdentity,
  ) {
    this.ttlMs = livenessTtlMs(config);
    this.clockMs = String(continuityMs(config));
    this.ipKey = shareIpKey(identity.id);
    this.userKey = shareUserKey(identity.id);
  }

  async tryAcquire(ip: string, user: string, maxPerIp: number, maxPerUser: number): Promise<AcquireOutcome> {
    if (!this.redis.ready) throw new ClusterStateUnavailableError();
    const sentAfter = this.publishes;
    this.local.begin(ip, user);
    let outcome: AcquireOutcome;
    try {
      const reply = await this.redis.timed('admit', () =>
        this.redis.client.wsproxyAdmit(
          REPLICAS_KEY,
          this.ipKey,
          this.userKey,
          this.identity.id,
          ip,
          user,
          String(maxPerIp),
          String(maxPerUser),
          String(this.ttlMs),
          SHARE_PREFIX,
          this.clockMs,
        ),
      );
      if (reply === 'warming') {
        this.warmingListener?.();
        throw new Error('warming up after a gap in the cluster state');
      }
      outcome = reply === 'ip' || reply === 'user' ? reply : 'ok';
    } catch (err) {
      this.undo(ip, user, sentAfter);
      throw new ClusterStateUnavailableError(err);
    }
    if (outcome !== 'ok') this.undo(ip, user, sentAfter);
    return outcome;
  }

  async release(ip: string, user: string): Promise<void> {
    this.local.drop(ip, user);
    if (!this.redis.ready) return;
    try {
      await this.redis.timed('release', () => this.redis.client.wsproxyRelease(this.ipKey, this.userKey, ip, user));
    } catch {
      // The local truth is already right; the next publish rewrites Redis from it.
    }
  }

  /**
   * `listener` is called when an admission is refused because the cluster
   * state warms up: Redis lost its state or stalled while the connection
   * stayed up, and the heartbeat would otherwise learn it only at its next beat.
   */
  onWarming(listener: () => void): void {
    this.warmingListener = listener;
  }

  /** This replica's own counts (its share of the cluster-wide counts). */
  snapshot(): Promise<{ perIp: Record<string, number>; perUser: Record<string, number> }> {
    return Promise.resolve(this.local.snapshot());
  }

  /**
   * Renews liveness and rewrites this replica's share from the local truth.
   * Resolves with the number of live replicas and how long the cluster state
   * still warms up (admissions refused); rejects when Redis is unreachable.
   * A publish requested while one is in flight runs right after it.
   */
  publish(): Promise<PublishOutcome> {
    return this.publishing.run();
  }

  private startPublish(): Promise<PublishOutcome> {
    if (!this.redis.ready) throw new ClusterStateUnavailableError();
    this.publishes++;
    const args = this.local.heartbeatArgs();
    return this.redis
      .timed('heartbeat', () => this.redis.client.wsproxyHeartbeat(REPLICAS_KEY, this.ipKey, this.userKey, this.identity.id, String(this.ttlMs), ...args, this.clockMs))
      .then(([liveReplicas, warmingMs]) => ({ liveReplicas, warmingMs }));
  }

  /** Removes this replica's share and liveness at a clean shutdown. */
  async leave(): Promise<void> {
    if (!this.redis.ready) return;
    await this.redis.timed('leave', () => this.redis.client.wsproxyLeave(REPLICAS_KEY, this.ipKey, this.userKey, this.identity.id));
  }

  /** An admission that did not take its slot: out of the local truth, and out of Redis if a publish counted it. */
  private undo(ip: string, user: string, sentAfter: number): void {
    this.local.drop(ip, user);
    if (this.publishes !== sentAfter) this.publish().catch(() => undefined);
  }
}
