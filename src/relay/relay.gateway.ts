import type { IncomingMessage } from 'node:http';
import { Inject, OnModuleInit } from '@nestjs/common';
import { OnGatewayConnection, WebSocketGateway } from '@nestjs/websockets';
import type { WebSocket } from 'ws';
import { WsproxyEvents } from '../common/events.js';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { TargetPolicyService } from '../policy/target-policy.service.js';
import { AdmissionService } from '../upgrade/admission.service.js';
import { UpgradeRouter, admissionOf } from '../upgrade/upgrade-router.service.js';
import type { Admitted, UpgradeContext, UpgradeRoute } from '../upgrade/upgrade-route.js';
import { parseRelayTarget } from './relay-params.js';
import { RelayService, type RelaySetup } from './relay.service.js';
import { TcpDialer } from './tcp-dialer.js';

interface AdmittedRelay extends Admitted {
  readonly setup: RelaySetup;
}

/**
 * `/relay`: admission in the order params → origin → auth → limits → target
 * policy → dial, all before the handshake completes; then the byte relay.
 */
@WebSocketGateway({ path: '/relay' })
export class RelayGateway implements OnGatewayConnection, OnModuleInit, UpgradeRoute<AdmittedRelay> {
  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    private readonly router: UpgradeRouter,
    private readonly admission: AdmissionService,
    private readonly policy: TargetPolicyService,
    private readonly dialer: TcpDialer,
    private readonly relays: RelayService,
    private readonly events: WsproxyEvents,
  ) {}

  onModuleInit(): void {
    this.router.register('/relay', this);
  }

  async admit(ctx: UpgradeContext): Promise<AdmittedRelay> {
    const target = parseRelayTarget(ctx.query);
    const client = await this.admission.admitClient(ctx);
    try {
      const resolved = await this.policy.resolveTarget(target.host, target.port);
      const dialStart = performance.now();
      const socket = await this.dialer.dial(resolved.address, target.port, this.config.dialTimeoutMs, ctx.signal).then(
        (s) => {
          this.events.emit('dial', { seconds: (performance.now() - dialStart) / 1000, ok: true });
          return s;
        },
        (err: unknown) => {
          this.events.emit('dial', { seconds: (performance.now() - dialStart) / 1000, ok: false });
          throw err;
        },
      );
      socket.on('error', () => socket.destroy());
      const setup: RelaySetup = {
        clientIp: ctx.clientIp,
        user: client.identity.userId,
        target: `${target.host}:${target.port}`,
        socket,
        lease: client.lease,
      };
      return {
        setup,
        abort: () => {
          socket.destroy();
          client.lease.release();
        },
      };
    } catch (err) {
      client.lease.release();
      throw err;
    }
  }

  handleConnection(ws: WebSocket, req: IncomingMessage): void {
    const admitted = admissionOf<AdmittedRelay>(req);
    admitted.setup.socket.removeAllListeners('error');
    this.relays.start(ws, admitted.setup);
  }
}
