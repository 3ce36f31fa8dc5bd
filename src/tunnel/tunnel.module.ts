import { Module } from '@nestjs/common';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { TunnelHttpRouter } from './http/tunnel-http.router.js';
import { InMemoryPortPool } from './state/in-memory-port-pool.js';
import { InMemoryTunnelRegistry } from './state/in-memory-tunnel-registry.js';
import { PORT_POOL } from './state/port-pool.js';
import { TUNNEL_REGISTRY } from './state/tunnel-registry.js';
import { TcpPortBinder } from './tcp/port-binder.js';
import { TunnelGateway } from './tunnel.gateway.js';
import { TunnelService } from './tunnel.service.js';

/**
 * Tunnels: `/tunnel` registration, subdomain HTTP routing, raw TCP ports.
 * Registry and port pool are in memory here; cluster mode overrides the
 * `TUNNEL_REGISTRY` and `PORT_POOL` providers.
 */
@Module({
  providers: [
    { provide: TUNNEL_REGISTRY, useClass: InMemoryTunnelRegistry },
    {
      provide: PORT_POOL,
      inject: [wsproxyConfig.KEY],
      useFactory: (config: WsproxyConfigType) => new InMemoryPortPool(config.tunnelPortMin, config.tunnelPortMax),
    },
    TcpPortBinder,
    TunnelService,
    TunnelGateway,
    TunnelHttpRouter,
  ],
  exports: [TunnelService, TUNNEL_REGISTRY, PORT_POOL],
})
export class TunnelModule {}
