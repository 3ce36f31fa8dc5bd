import { Module } from '@nestjs/common';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { TunnelHttpRouter } from './http/tunnel-http.router.js';
import { TunnelWebSocketFront } from './http/tunnel-websocket.front.js';
import { InMemoryPortPool } from './state/in-memory-port-pool.js';
import { InMemoryTunnelRegistry } from './state/in-memory-tunnel-registry.js';
import { PORT_POOL, type PortPool } from './state/port-pool.js';
import { SHARED_PORT_POOL, SHARED_TUNNEL_REGISTRY } from './state/shared-state.js';
import { TUNNEL_REGISTRY, type TunnelRegistry } from './state/tunnel-registry.js';
import { TcpPortBinder } from './tcp/port-binder.js';
import { TunnelGateway } from './tunnel.gateway.js';
import { TunnelService } from './tunnel.service.js';

/**
 * Tunnels: `/tunnel` registration, subdomain HTTP routing, raw TCP ports.
 * Registry and port pool are in memory here; with `REDIS_URL` the cluster
 * module's shared ones (`SHARED_TUNNEL_REGISTRY`, `SHARED_PORT_POOL`) take their place.
 */
@Module({
  providers: [
    {
      provide: TUNNEL_REGISTRY,
      inject: [wsproxyConfig.KEY, { token: SHARED_TUNNEL_REGISTRY, optional: true }],
      useFactory: (config: WsproxyConfigType, shared?: TunnelRegistry) => (config.redisUrl && shared ? shared : new InMemoryTunnelRegistry()),
    },
    {
      provide: PORT_POOL,
      inject: [wsproxyConfig.KEY, { token: SHARED_PORT_POOL, optional: true }],
      useFactory: (config: WsproxyConfigType, shared?: PortPool) =>
        config.redisUrl && shared ? shared : new InMemoryPortPool(config.tunnelPortMin, config.tunnelPortMax),
    },
    TcpPortBinder,
    TunnelService,
    TunnelGateway,
    TunnelHttpRouter,
    TunnelWebSocketFront,
  ],
  exports: [TunnelService, TunnelHttpRouter, TcpPortBinder, TUNNEL_REGISTRY, PORT_POOL],
})
export class TunnelModule {}
