import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { HealthIndicatorResult } from '@nestjs/terminus';
import { WsproxyEvents } from '../common/events.js';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { isLoopbackHost } from '../config/config.schema.js';
import { ReadinessRegistry } from '../health/readiness.registry.js';
import { PINO, type Pino } from '../logging/logging.module.js';
import { ClusterRedis } from './cluster-redis.service.js';
import { livenessTtlMs } from './cluster-settings.js';
import { RedisCounterStore } from './redis-counter.store.js';
import { ReplicaIdentity } from './replica-identity.js';

/**
 * The replica's membership in the cluster: every `CLUSTER_HEARTBEAT_MS` it
 * renews its liveness (TTL of three beats) and re-publishes its share of the
 * counts from its local truth; right after Redis comes back it does so at once.
 * Contributes the `redis` readiness check. At a clean shutdown — after the
 * drain — it removes its share and closes the connection.
 */
@Injectable()
export class ClusterHeartbeat implements OnModuleInit, OnApplicationBootstrap, OnApplicationShutdown {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private failuresInARow = 0;
  /** Live replicas Redis reported at the last successful heartbeat. */
  liveReplicas = 0;
  /** Until when (local clock) the last heartbeat said the cluster state warms up; infinite until the first one after a (re)connection. */
  private warmingUntil = Number.POSITIVE_INFINITY;
  /** What the last heartbeat said, to log the start of a warm-up once. */
  private lastWarmingMs = 0;

  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    private readonly redis: ClusterRedis,
    private readonly store: RedisCounterStore,
    private readonly identity: ReplicaIdentity,
    private readonly events: WsproxyEvents,
    private readonly readiness: ReadinessRegistry,
    @Inject(PINO) private readonly log: Pino,
  ) {}

  onModuleInit(): void {
    this.readiness.add(() => this.readinessCheck());
    // Redis restarted (possibly empty) or reachable again: re-publish now, not at the next beat,
    // and stay unready until that heartbeat tells whether the cluster state is warming up.
    this.redis.client.on('ready', () => {
      this.warmingUntil = Number.POSITIVE_INFINITY;
      void this.beat();
    });
    // An admission refused because the cluster state warms up (Redis lost its state, or stalled,
    // without the connection dropping): unready from now on, not from the next beat, which may be a
    // whole period away. A warm-up lasts at most one liveness TTL; the beat sent now tells how long.
    this.store.onWarming(() => {
      if (this.stopped || Date.now() < this.warmingUntil) return;
      this.warmingUntil = Date.now() + livenessTtlMs(this.config);
      void this.beat();
    });
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.redis.connect();
    // Knows at once whether the cluster state is warming up, for readiness.
    if (this.redis.ready) await this.beat();
    // An empty CLUSTER_ADVERTISE_URL is derived from BIND_HOST (the configuration refuses it with a wildcard bind).
    const advertise = this.config.clusterAdvertiseUrl || `derived: http://${this.config.bindHost} and the listening port`;
    if (!this.config.clusterAdvertiseUrl && isLoopbackHost(this.config.bindHost)) {
      this.log.warn(
        { event: 'cluster_loopback_advertise_url', bindHost: this.config.bindHost },
        'CLUSTER_ADVERTISE_URL is derived from a loopback BIND_HOST: only replicas on this host can reach this one',
      );
    }
    this.log.info(
      { event: 'cluster_member', replica: this.identity.id, advertise, heartbeatMs: this.config.clusterHeartbeatMs, ttlMs: livenessTtlMs(this.config) },
      'cluster mode: counts shared in Redis',
    );
    this.timer = setInterval(() => void this.beat(), this.config.clusterHeartbeatMs);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    try {
      await this.store.leave();
    } catch {
      // Its share expires within the TTL anyway.
    }
    await this.redis.close();
  }

  /** Readiness `redis`: a PING answered within the command timeout, and the cluster state not warming up. */
  private async readinessCheck(): Promise<HealthIndicatorResult<'redis'>> {
    const down: HealthIndicatorResult<'redis'> = { redis: { status: 'down', message: 'cluster state store (Redis) unreachable' } };
    if (!this.redis.ready) return down;
    if (this.warmingUntil === Number.POSITIVE_INFINITY) {
      return { redis: { status: 'down', message: 'cluster state warming up: waiting for the first heartbeat since connecting' } };
    }
    if (Date.now() < this.warmingUntil) {
      return { redis: { status: 'down', message: 'cluster state warming up after a gap: admissions resume within one liveness TTL' } };
    }
    try {
      await this.redis.timed('ping', () => this.redis.client.ping());
      return { redis: { status: 'up', replica: this.identity.id, liveReplicas: this.liveReplicas } };
    } catch {
      return down;
    }
  }

  /** One heartbeat; never rejects. */
  async beat(): Promise<void> {
    if (this.stopped) return;
    try {
      const { liveReplicas, warmingMs } = await this.store.publish();
      this.liveReplicas = liveReplicas;
      if (warmingMs > 0 && this.lastWarmingMs === 0) {
        this.log.info(
          { event: 'cluster_state_warming', ms: warmingMs },
          'cluster state in Redis is new, was lost or was interrupted: new connections are refused with 503 until every replica has re-published its share',
        );
      }
      this.warmingUntil = Date.now() + warmingMs;
      this.lastWarmingMs = warmingMs;
      if (this.failuresInARow > 0) {
        this.log.info({ event: 'cluster_heartbeat_recovered', failed: this.failuresInARow }, 'cluster heartbeat recovered');
      }
      this.failuresInARow = 0;
      this.events.emit('cluster.heartbeat', { ok: true });
    } catch (err) {
      this.failuresInARow++;
      if (this.failuresInARow === 1) {
        this.log.warn(
          { event: 'cluster_heartbeat_failed', err: err instanceof Error ? err.message : String(err) },
          'cluster heartbeat failed: this replica drops out of the cluster counts after three missed beats',
        );
      }
      this.events.emit('cluster.heartbeat', { ok: false });
    }
  }
}
