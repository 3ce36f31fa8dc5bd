import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { Inject, OnModuleInit } from '@nestjs/common';
import { OnGatewayConnection, WebSocketGateway } from '@nestjs/websockets';
import type { WebSocket } from 'ws';
import { WsproxyEvents } from '../common/events.js';
import { hostPort } from '../common/host-port.js';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { TargetPolicyService } from '../policy/target-policy.service.js';
import { parseResumeRequest } from '../resume/resume-params.js';
import type { ResumableSession } from '../resume/resumable-session.js';
import { ResumeService } from '../resume/resume.service.js';
import { encodeControl, type ControlMode } from '../resume/wire.js';
import { AdmissionService } from '../upgrade/admission.service.js';
import { UpgradeRouter, admissionOf } from '../upgrade/upgrade-router.service.js';
import type { Admitted, UpgradeContext, UpgradeRoute } from '../upgrade/upgrade-route.js';
import { DirectReader } from './direct-reader.js';
import { parseRelayTarget } from './relay-params.js';
import { RelayService, type RelaySetup } from './relay.service.js';
import { TcpDialer } from './tcp-dialer.js';

/**
 * The dialled target's error listener from the dial on: a reset before the
 * relay starts only destroys the socket. It stays once the relay adds its own.
 */
function destroyOnError(this: Socket): void {
  this.destroy();
}

interface AdmittedRelay extends Admitted {
  /**
   * `plain`: the byte relay. `resumable`: `resume=1`, a resumable session.
   * `announced-plain`: `resume=1` while resumption is off (`RESUME_WINDOW_S=0`):
   * a plain relay after one session frame with no id and `windowS` 0.
   */
  readonly kind: 'plain' | 'resumable' | 'announced-plain';
  readonly setup: RelaySetup;
  readonly control: ControlMode;
}

interface AdmittedReattach extends Admitted {
  readonly kind: 'reattach';
  readonly session: ResumableSession;
  readonly received: number;
}

/**
 * `/relay`: admission in the order params → origin → auth → limits → target
 * policy → dial, all before the handshake completes; then the byte relay.
 * With `resume=1` the relay is resumable; `resume=<id>&received=N` (no target)
 * reattaches to one: params → origin → auth → the session, which must be the
 * same user's (404 otherwise). See docs/resume-protocol.md.
 */
@WebSocketGateway({ path: '/relay' })
export class RelayGateway implements OnGatewayConnection, OnModuleInit, UpgradeRoute<AdmittedRelay | AdmittedReattach> {
  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    private readonly router: UpgradeRouter,
    private readonly admission: AdmissionService,
    private readonly policy: TargetPolicyService,
    private readonly dialer: TcpDialer,
    private readonly relays: RelayService,
    private readonly events: WsproxyEvents,
    private readonly resume: ResumeService,
  ) {}

  onModuleInit(): void {
    this.router.register('/relay', this);
  }

  async admit(ctx: UpgradeContext): Promise<AdmittedRelay | AdmittedReattach> {
    const resume = parseResumeRequest(ctx.query);
    if (resume.kind === 'reattach') return this.admitReattach(ctx, resume.id, resume.received);
    const target = parseRelayTarget(ctx.query);
    const client = await this.admission.admitClient(ctx);
    try {
      const resolved = await this.policy.resolveTarget(target.host, target.port, ctx.clientIp, ctx.signal);
      const dialStart = performance.now();
      const kind = resume.kind === 'plain' ? 'plain' : this.resume.enabled ? 'resumable' : 'announced-plain';
      const reader = kind === 'resumable' && DirectReader.supported ? new DirectReader() : undefined;
      // A plain relay keeps writing to a target that has sent its FIN until the client has answered the
      // close that FIN became: what the client sent meanwhile still reaches the target (see pipeRelay).
      const halfOpen = kind !== 'resumable';
      const socket = await this.dialer.dial(resolved.address, target.port, this.config.dialTimeoutMs, ctx.signal, reader, halfOpen).then(
        (s) => {
          this.events.emit('dial', { seconds: (performance.now() - dialStart) / 1000, ok: true });
          return s;
        },
        (err: unknown) => {
          // A client that left cut the dial short: that is not how the dial went.
          if (!ctx.signal.aborted) this.events.emit('dial', { seconds: (performance.now() - dialStart) / 1000, ok: false });
          throw err;
        },
      );
      socket.on('error', destroyOnError);
      const setup: RelaySetup = {
        clientIp: ctx.clientIp,
        user: client.identity.userId,
        // `host:port` as a URL authority writes it: `::1:22` would read as the address `::1:22` (or `::1` port 22).
        target: hostPort(target.host, target.port),
        socket,
        lease: client.lease,
        reader,
      };
      return {
        kind,
        control: resume.kind === 'open' ? resume.control : 'text',
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

  /**
   * A reattach: no target and no new slot (the session holds its own), the same user only. One naming
   * no live session holds a `MAX_CONNECTIONS` slot while it is authenticated (it is refused 404 after).
   */
  private async admitReattach(ctx: UpgradeContext, id: string, received: number): Promise<AdmittedReattach> {
    const identity = await this.admission.identify(ctx, !this.resume.isLive(id));
    const session = this.resume.claim(id, identity.userId, received);
    return { kind: 'reattach', session, received, abort: () => undefined };
  }

  handleConnection(ws: WebSocket, req: IncomingMessage): void {
    const admitted = admissionOf<AdmittedRelay | AdmittedReattach>(req);
    if (admitted.kind === 'reattach') {
      this.resume.reattach(ws, admitted.session, admitted.received);
      return;
    }
    if (admitted.kind === 'resumable') {
      this.resume.open(ws, admitted.setup, admitted.control);
      return;
    }
    if (admitted.kind === 'announced-plain') {
      const frame = encodeControl({ type: 'session', id: null, windowS: 0 }, admitted.control);
      ws.send(frame, { binary: typeof frame !== 'string' });
    }
    this.relays.start(ws, admitted.setup);
  }
}
