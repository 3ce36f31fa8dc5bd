import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { wsproxyConfig, type WsproxyConfigType } from '../../config/wsproxy.config.js';
import { PINO, type Pino } from '../../logging/logging.module.js';
import { ClusterRedis } from '../cluster-redis.service.js';
import { ClusterTunnelState } from './cluster-tunnel-state.js';
import { PORTS_CHANNEL } from './tunnel-keys.js';

/**
 * The tunnels' heartbeat: every `CLUSTER_HEARTBEAT_MS` (and at once when Redis
 * is back, and when any replica claims or frees a raw port — pub/sub on
 * `PORTS_CHANNEL`) it re-publishes this replica's tunnels and ports and
 * refreshes the cluster-wide port listing the listeners follow.
 */
@Injectable()
export class ClusterTunnelBeat implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer: NodeJS.Timeout | null = null;
  private subscriber: Redis | null = null;
  private stopped = false;
  private failing = false;

  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    private readonly redis: ClusterRedis,
    private readonly state: ClusterTunnelState,
    @Inject(PINO) private readonly log: Pino,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.redis.client.on('ready', () => void this.beat());
    const sub = this.redis.client.duplicate({ lazyConnect: true, enableOfflineQueue: true, connectionName: undefined });
    this.subscriber = sub;
    sub.on('error', () => undefined);
    sub.on('message', () => void this.beat());
    // Subscribed on every (re)connect: a subscription refused while Redis was down is not retried by the client.
    // Messages lost while the subscriber was away are made up by the next beat.
    sub.on('ready', () => {
      void sub.subscribe(PORTS_CHANNEL).catch(() => undefined);
      void this.beat();
    });
    void sub.connect().catch(() => undefined);
    this.timer = setInterval(() => void this.beat(), this.config.clusterHeartbeatMs);
    this.timer.unref();
    if (this.redis.ready) await this.beat();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.subscriber?.disconnect();
    await this.state.leave().catch(() => undefined);
  }

  /** One beat; never rejects. */
  async beat(): Promise<void> {
    if (this.stopped) return;
    // The fence is checked once the loop has read what is waiting: after a stall of this replica the timers
    // run first, and the reply to a heartbeat sent just before the stall has renewed the claims.
    await new Promise((resolve) => setImmediate(resolve));
    if (this.stopped) return;
    this.state.fenceIfLapsed();
    try {
      await this.state.beat();
      if (this.failing) this.log.info({ event: 'cluster_tunnel_beat_recovered' }, 'tunnel heartbeat recovered');
      this.failing = false;
    } catch (err) {
      if (!this.failing) {
        this.log.warn(
          { event: 'cluster_tunnel_beat_failed', err: err instanceof Error ? err.message : String(err) },
          'tunnel heartbeat failed: this replica’s tunnels drop out of the cluster after three missed beats',
        );
      }
      this.failing = true;
    }
  }
}
