import { Global, Module } from '@nestjs/common';
import { SHARED_COUNTER_STORE } from '../limits/connection-counter.store.js';
import { ClusterController } from './cluster.controller.js';
import { ClusterHeartbeat } from './cluster-heartbeat.service.js';
import { ClusterMetrics } from './cluster-metrics.service.js';
import { ClusterRedis } from './cluster-redis.service.js';
import { InternalAuthGuard } from './internal-auth.guard.js';
import { RedisCounterStore } from './redis-counter.store.js';
import { ReplicaIdentity } from './replica-identity.js';
import { REMOTE_TUNNEL_HTTP, REMOTE_TUNNEL_WEBSOCKET } from '../tunnel/http/remote-tunnel.js';
import { SHARED_PORT_POOL, SHARED_TUNNEL_REGISTRY } from '../tunnel/state/shared-state.js';
import { ClusterTunnelBeat } from './tunnels/cluster-tunnel-beat.service.js';
import { ClusterTunnelState } from './tunnels/cluster-tunnel-state.js';
import { ClusterTunnelsModule } from './tunnels/cluster-tunnels.module.js';
import { RedisPortPool, RedisTunnelRegistry } from './tunnels/redis-tunnel-registry.js';
import { ReplicaAddress } from './tunnels/replica-address.js';
import { ClusterMuxClient } from './tunnels/cluster-mux.client.js';
import { TunnelWebSocketForwarder } from './tunnels/tunnel-websocket.forwarder.js';

/**
 * Cluster mode, loaded only when `REDIS_URL` is set (see `AppModule`): the
 * Redis connection, this replica's identity and heartbeat, the cluster-wide
 * connection counters (as `SHARED_COUNTER_STORE`, which `LimitsModule` picks
 * up), the `redis` readiness check, metrics, and the authenticated
 * replica-to-replica endpoints under `/_cluster/`; tunnels across replicas
 * (shared registry and port pool, forwarding to the owner). Design: docs/scaling.md.
 */
@Global()
@Module({
  imports: [ClusterTunnelsModule],
  controllers: [ClusterController],
  providers: [
    ReplicaIdentity,
    ClusterRedis,
    RedisCounterStore,
    { provide: SHARED_COUNTER_STORE, useExisting: RedisCounterStore },
    ClusterHeartbeat,
    ClusterMetrics,
    InternalAuthGuard,
    ReplicaAddress,
    ClusterTunnelState,
    ClusterTunnelBeat,
    RedisTunnelRegistry,
    RedisPortPool,
    { provide: SHARED_TUNNEL_REGISTRY, useExisting: RedisTunnelRegistry },
    { provide: SHARED_PORT_POOL, useExisting: RedisPortPool },
    ClusterMuxClient,
    { provide: REMOTE_TUNNEL_HTTP, useExisting: ClusterMuxClient },
    TunnelWebSocketForwarder,
    { provide: REMOTE_TUNNEL_WEBSOCKET, useExisting: TunnelWebSocketForwarder },
  ],
  exports: [
    ReplicaIdentity,
    ClusterRedis,
    RedisCounterStore,
    SHARED_COUNTER_STORE,
    ClusterHeartbeat,
    InternalAuthGuard,
    ClusterTunnelState,
    SHARED_TUNNEL_REGISTRY,
    SHARED_PORT_POOL,
    REMOTE_TUNNEL_HTTP,
    REMOTE_TUNNEL_WEBSOCKET,
  ],
})
export class ClusterModule {}
