import { Module } from '@nestjs/common';
import { TunnelModule } from '../../tunnel/tunnel.module.js';
import { ClusterTunnelsController } from './cluster-tunnels.controller.js';
import { TunnelTcpForwarding } from './tcp-forwarding.js';
import { TunnelWebSocketEndpoint } from './tunnel-websocket.endpoint.js';

/**
 * The owner's side of tunnels across replicas (HTTP, WebSocket upgrades and
 * raw TCP arriving from another replica) and the raw-port listeners that
 * follow the cluster. Loaded by `ClusterModule`, so only with `REDIS_URL`.
 */
@Module({
  imports: [TunnelModule],
  controllers: [ClusterTunnelsController],
  providers: [TunnelTcpForwarding, TunnelWebSocketEndpoint],
  exports: [TunnelTcpForwarding],
})
export class ClusterTunnelsModule {}
