import { Module } from '@nestjs/common';
import { TunnelModule } from '../../tunnel/tunnel.module.js';
import { TunnelTcpForwarding } from './tcp-forwarding.js';
import { ClusterMuxEndpoint } from './cluster-mux.endpoint.js';
import { TunnelWebSocketEndpoint } from './tunnel-websocket.endpoint.js';

/**
 * The owner's side of tunnels across replicas (HTTP, WebSocket upgrades and
 * raw TCP arriving from another replica) and the raw-port listeners that
 * follow the cluster. Loaded by `ClusterModule`, so only with `REDIS_URL`.
 */
@Module({
  imports: [TunnelModule],
  providers: [TunnelTcpForwarding, ClusterMuxEndpoint, TunnelWebSocketEndpoint],
  exports: [TunnelTcpForwarding, ClusterMuxEndpoint],
})
export class ClusterTunnelsModule {}
