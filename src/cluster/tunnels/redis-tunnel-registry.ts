import { Inject, Injectable } from '@nestjs/common';
import { wsproxyConfig, type WsproxyConfigType } from '../../config/wsproxy.config.js';
import type { PortLossCause, PortPool } from '../../tunnel/state/port-pool.js';
import type { ClaimOutcome, TunnelRecord, TunnelRegistry } from '../../tunnel/state/tunnel-registry.js';
import { ClusterTunnelState } from './cluster-tunnel-state.js';

/**
 * The cluster-wide tunnel registry (cluster mode): subdomains unique in the
 * whole cluster (`SET NX`), owned by the replica holding the tunnel's
 * WebSocket, with its advertise URL; per-user tunnel counts over all live
 * replicas. Renewed by the tunnel heartbeat (`ClusterTunnelBeat`).
 */
@Injectable()
export class RedisTunnelRegistry implements TunnelRegistry {
  constructor(private readonly state: ClusterTunnelState) {}

  claim(record: TunnelRecord, maxPerUser: number): Promise<ClaimOutcome> {
    return this.state.claimTunnel(record, maxPerUser);
  }

  release(subdomain: string): Promise<void> {
    return this.state.releaseTunnel(subdomain);
  }

  lookup(subdomain: string): Promise<TunnelRecord | null> {
    return this.state.lookup(subdomain);
  }

  countForUser(user: string): Promise<number> {
    return this.state.countForUser(user);
  }

  size(): Promise<number> {
    return this.state.size();
  }
}

/** The cluster-wide raw port pool: a port is given to one tunnel in the whole cluster. */
@Injectable()
export class RedisPortPool implements PortPool {
  readonly min: number;
  readonly max: number;

  constructor(
    @Inject(wsproxyConfig.KEY) config: WsproxyConfigType,
    private readonly state: ClusterTunnelState,
  ) {
    this.min = config.tunnelPortMin;
    this.max = config.tunnelPortMax;
  }

  claim(owner: string, from: number = this.min): Promise<number | null> {
    const start = Math.max(from, this.min);
    if (start > this.max) return Promise.resolve(null);
    return this.state.claimPort(owner, start, this.max);
  }

  release(port: number, owner: string): Promise<void> {
    return this.state.releasePort(port, owner);
  }

  ownerOf(port: number): Promise<string | null> {
    return Promise.resolve(this.state.portOwner(port));
  }

  claimed(): Promise<number[]> {
    return Promise.resolve(this.state.allocatedPorts());
  }

  onLost(listener: (port: number, owner: string, why: PortLossCause) => void): void {
    this.state.onPortLost(listener);
  }
}
