import { Global, Module } from '@nestjs/common';
import { SHARED_COUNTER_STORE } from '../limits/connection-counter.store.js';
import { ClusterController } from './cluster.controller.js';
import { ClusterHeartbeat } from './cluster-heartbeat.service.js';
import { ClusterMetrics } from './cluster-metrics.service.js';
import { ClusterRedis } from './cluster-redis.service.js';
import { InternalAuthGuard } from './internal-auth.guard.js';
import { RedisCounterStore } from './redis-counter.store.js';
import { ReplicaIdentity } from './replica-identity.js';

/**
 * Cluster mode, loaded only when `REDIS_URL` is set (see `AppModule`): the
 * Redis connection, this replica's identity and heartbeat, the cluster-wide
 * connection counters (as `SHARED_COUNTER_STORE`, which `LimitsModule` picks
 * up), the `redis` readiness check, metrics, and the authenticated
 * replica-to-replica endpoints under `/_cluster/`. Design: docs/scaling.md.
 */
@Global()
@Module({
  controllers: [ClusterController],
  providers: [
    ReplicaIdentity,
    ClusterRedis,
    RedisCounterStore,
    { provide: SHARED_COUNTER_STORE, useExisting: RedisCounterStore },
    ClusterHeartbeat,
    ClusterMetrics,
    InternalAuthGuard,
  ],
  exports: [ReplicaIdentity, ClusterRedis, RedisCounterStore, SHARED_COUNTER_STORE, ClusterHeartbeat, InternalAuthGuard],
})
export class ClusterModule {}
