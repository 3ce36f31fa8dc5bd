import type { IncomingMessage } from 'node:http';
import { Inject, OnModuleInit } from '@nestjs/common';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { OnGatewayConnection, WebSocketGateway } from '@nestjs/websockets';
import type { WebSocket } from 'ws';
import type { Lease } from '../limits/limits.service.js';
import { AdmissionService } from '../upgrade/admission.service.js';
import { UpgradeRouter, admissionOf } from '../upgrade/upgrade-router.service.js';
import type { Admitted, UpgradeContext, UpgradeRoute } from '../upgrade/upgrade-route.js';
import { V2_MAX_FRAME_BYTES } from './protocol/v2.js';
import { parseTunnelParams, type TunnelParams } from './tunnel-params.js';
import type { TunnelReservation } from './tunnel-reservation.js';
import { TunnelService } from './tunnel.service.js';
import { V1_CLIENT_MAX_RESPONSE_BODY, v1MaxMessageBytes } from './v1/v1-limits.js';

interface AdmittedTunnel extends Admitted {
  readonly params: TunnelParams;
  readonly lease: Lease;
  readonly reservation: TunnelReservation;
}

/**
 * `/tunnel`: admission in the order params → origin → auth → extra rules →
 * per-IP/per-user connection limits → per-user tunnel limit → subdomain and
 * raw port, all before the handshake completes; then the tunnel session.
 */
@WebSocketGateway({ path: '/tunnel' })
export class TunnelGateway implements OnGatewayConnection, OnModuleInit, UpgradeRoute<AdmittedTunnel> {
  /** A v1 `http_response` carries a whole body, base64-encoded, in one message (v2 connections take `V2_MAX_FRAME_BYTES`). */
  readonly maxPayload: number;

  constructor(
    @Inject(wsproxyConfig.KEY) config: WsproxyConfigType,
    private readonly router: UpgradeRouter,
    private readonly admission: AdmissionService,
    private readonly tunnels: TunnelService,
  ) {
    this.maxPayload = Math.max(config.maxMessageBytes, v1MaxMessageBytes(Math.max(config.tunnelMaxBodyBytes, V1_CLIENT_MAX_RESPONSE_BODY)));
  }

  onModuleInit(): void {
    this.router.register('/tunnel', this);
  }

  async admit(ctx: UpgradeContext): Promise<AdmittedTunnel> {
    const params = parseTunnelParams(ctx.query);
    const client = await this.admission.admitClient(ctx);
    let reservation: TunnelReservation;
    try {
      reservation = await this.tunnels.reserve(client.identity.userId, ctx.clientIp, ctx.signal);
    } catch (err) {
      client.lease.release();
      throw err;
    }
    return {
      params,
      lease: client.lease,
      reservation,
      // v2 frames are small; only v1 needs room for a whole body in one message.
      maxPayload: params.version === 2 ? V2_MAX_FRAME_BYTES : this.maxPayload,
      abort: () => {
        this.tunnels.abandon(reservation);
        client.lease.release();
      },
    };
  }

  handleConnection(ws: WebSocket, req: IncomingMessage): void {
    const admitted = admissionOf<AdmittedTunnel>(req);
    this.tunnels.start(ws, admitted.reservation, admitted.lease, admitted.params);
  }
}
