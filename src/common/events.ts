import { EventEmitter } from 'node:events';
import { Injectable } from '@nestjs/common';
import type { ListenerRefusal } from '../upgrade/listener-refusals.js';

/** Emitted once when a relay's WebSocket is accepted and its target is connected. */
export interface RelayOpenedEvent {
  readonly id: string;
  readonly clientIp: string;
  readonly user: string;
  readonly target: string;
  readonly resumable: boolean;
}

/** Emitted once when a relay has ended for good. */
export interface RelayClosedEvent extends RelayOpenedEvent {
  /** Bytes from the client to the target. */
  readonly bytesUp: number;
  /** Bytes from the target to the client. */
  readonly bytesDown: number;
  readonly durationMs: number;
  readonly closeCode: number;
  readonly closeReason: string;
  /** Whose action ended it: the client's close or broken frames, the target's end, or the server (drain, maximum age, expiry). */
  readonly endedBy: 'client' | 'target' | 'server';
}

export interface AdmissionRefusedEvent {
  readonly route: string;
  readonly kind: string;
  readonly status: number;
  readonly clientIp: string;
}

export interface DialEvent {
  readonly seconds: number;
  readonly ok: boolean;
}

export interface TunnelEvent {
  readonly subdomain: string;
  readonly user: string;
  readonly clientIp: string;
  readonly rawPort: number;
}

/** Cluster mode: the duration and outcome of one Redis round trip. */
export interface ClusterRedisEvent {
  readonly op: 'admit' | 'release' | 'heartbeat' | 'ping' | 'leave' | 'tunnel_claim' | 'tunnel_release' | 'tunnel_lookup' | 'tunnel_heartbeat';
  readonly seconds: number;
  readonly ok: boolean;
}

export interface WsproxyEventMap {
  'relay.opened': [RelayOpenedEvent];
  'relay.closed': [RelayClosedEvent];
  'admission.refused': [AdmissionRefusedEvent];
  /** A request (or upgrade) the listener refused before any route: unreadable, too slow, too large. */
  'request.refused': [{ readonly reason: ListenerRefusal }];
  dial: [DialEvent];
  'tunnel.opened': [TunnelEvent];
  'tunnel.closed': [
    TunnelEvent & {
      readonly httpRequests: number;
      readonly tcpConnections: number;
      readonly durationMs: number;
      /** The close code of the tunnel's WebSocket: for frames the client broke, the one the proxy sent (1002, 1009…). */
      readonly closeCode: number;
      readonly closeReason: string;
    },
  ];
  'tunnel.http': [{ readonly status: number; readonly forwarded: boolean }];
  'tunnel.tcp': [{ readonly forwarded: boolean }];
  'resume.detached': [{ readonly id: string }];
  'resume.reattached': [{ readonly id: string }];
  'resume.expired': [{ readonly id: string }];
  'jwks.fetch': [{ readonly ok: boolean }];
  /** One round trip to the cluster state store (Redis); `op` is a small fixed set. */
  'cluster.redis': [ClusterRedisEvent];
  /** One cluster heartbeat (liveness + re-publication of this replica's share). */
  'cluster.heartbeat': [{ readonly ok: boolean }];
}

/**
 * The service's lifecycle events (never per frame). Metrics, logs and a team's
 * own audit sinks subscribe here instead of editing the relay or tunnel code.
 */
@Injectable()
export class WsproxyEvents extends EventEmitter<WsproxyEventMap> {
  constructor() {
    super({ captureRejections: false });
    this.setMaxListeners(100);
  }
}
