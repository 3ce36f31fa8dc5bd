import { Inject, Injectable, Optional } from '@nestjs/common';
import { Gauge, type Registry } from 'prom-client';
import { METRICS_REGISTRY } from '../metrics/metrics.registry.js';
import { ClusterHeartbeat } from './cluster-heartbeat.service.js';
import { ClusterRedis } from './cluster-redis.service.js';

/**
 * Cluster-mode gauges read at scrape time (they exist only with `REDIS_URL`):
 * whether Redis is reachable and how many replicas are live. The event-fed
 * series (Redis round-trip latency, heartbeats and their failures) are in
 * `WsproxyMetrics`, from the `cluster.redis` and `cluster.heartbeat` events.
 */
@Injectable()
export class ClusterMetrics {
  constructor(redis: ClusterRedis, heartbeat: ClusterHeartbeat, @Optional() @Inject(METRICS_REGISTRY) registry?: Registry) {
    if (!registry) return;
    const registers = [registry];
    new Gauge({
      name: 'wsproxy_cluster_redis_up',
      help: '1 when the connection to Redis (cluster state) is ready, else 0.',
      registers,
      collect() {
        this.set(redis.ready ? 1 : 0);
      },
    });
    new Gauge({
      name: 'wsproxy_cluster_replicas',
      help: 'Live replicas seen at the last successful heartbeat (this one included).',
      registers,
      collect() {
        this.set(heartbeat.liveReplicas);
      },
    });
  }
}
