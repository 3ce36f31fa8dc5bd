import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { WebSocket } from 'ws';
import { Refusal } from '../common/refusal.js';
import { WsproxyEvents } from '../common/events.js';
import { LogThrottle } from '../common/log-throttle.js';
import { armMaxAge, UNARMED } from '../common/max-age.js';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { DrainService } from '../lifecycle/drain.service.js';
import { perUserLimit, type Lease } from '../limits/limits.service.js';
import { PINO, type Pino } from '../logging/logging.module.js';
import { KeepaliveService } from '../upgrade/keepalive.service.js';
import type { TunnelWire } from './core/stream-types.js';
import { CLIENT_BACKLOG_BYTES } from './core/client-backlog.js';
import { TunnelSession, type ConnectionGate, type TunnelSessionEnd } from './core/tunnel-session.js';
import { PORT_POOL, type PortPool } from './state/port-pool.js';
import { newSubdomain } from './state/subdomain.js';
import { TUNNEL_REGISTRY, type TunnelRegistry } from './state/tunnel-registry.js';
import { TcpPortBinder } from './tcp/port-binder.js';
import type { TunnelParams } from './tunnel-params.js';
import { TunnelReservation } from './tunnel-reservation.js';
import { ByteBudget } from './v1/byte-budget.js';
import { v1MaxBodyBytes, v1MaxMessageBytes } from './v1/v1-limits.js';
import { V1Wire } from './v1/v1-wire.js';
import { V2Wire } from './v2/v2-wire.js';
import type { GoneSignal } from '../upgrade/client-gone.js';

/** Attempts at a fresh random subdomain before giving up (a collision of 64 random bits is not expected even once). */
const SUBDOMAIN_ATTEMPTS = 8;

/**
 * Runs tunnels on this replica: reserves subdomain and raw port for an admitted
 * registration, starts the session on its WebSocket with the protocol codec
 * the client asked for, and gives everything back — port, subdomain, limit
 * slot, drain tracking — exactly once however the tunnel ends.
 */
@Injectable()
export class TunnelService implements OnApplicationShutdown {
  private readonly live = new Map<string, TunnelSession>();
  private readonly pending = new Set<TunnelReservation>();
  /** One warning a minute per kind of failure to bind a raw port. */
  private readonly bindWarnings = new LogThrottle(60_000);
  private tcpOpen = 0;
  private readonly v1BodyBudget: ByteBudget;
  /** MAX_TUNNELS_PER_USER, or no bound with authentication off (every client is `anonymous`). */
  private readonly maxTunnelsPerUser: number;
  /** The global cap on raw TCP connections over all tunnels of this replica. */
  readonly tcpGate: ConnectionGate = {
    tryAcquire: () => {
      if (this.tcpOpen >= this.config.maxTunnelTcpConnsGlobal) return false;
      this.tcpOpen++;
      return true;
    },
    release: () => {
      this.tcpOpen = Math.max(0, this.tcpOpen - 1);
    },
  };

  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    @Inject(PINO) private readonly log: Pino,
    @Inject(TUNNEL_REGISTRY) readonly registry: TunnelRegistry,
    @Inject(PORT_POOL) readonly pool: PortPool,
    private readonly binder: TcpPortBinder,
    private readonly events: WsproxyEvents,
    private readonly drain: DrainService,
    private readonly keepalive: KeepaliveService,
  ) {
    this.maxTunnelsPerUser = perUserLimit(config, config.maxTunnelsPerUser);
    // One address may hold an eighth of it, or one largest body if that is more.
    this.v1BodyBudget = new ByteBudget(config.tunnelV1BodyBufferBytes, Math.max(Math.floor(config.tunnelV1BodyBufferBytes / 8), v1MaxBodyBytes(config.tunnelMaxBodyBytes)));
    // Cluster mode: a port whose claim lapsed (or may lapse: Redis out of
    // reach) could go to another tunnel, and one port must not lead to two
    // tunnels. This one ends; its client reconnects and gets a port of its own.
    pool.onLost?.((port, owner, why) => {
      const session = this.live.get(owner);
      if (!session || session.info.rawPort !== port) return;
      const message =
        why === 'taken'
          ? 'raw port now held by another replica: closing the tunnel'
          : 'raw port claim not renewed for the liveness TTL less one beat (Redis out of reach): given up before it could lapse, closing the tunnel';
      this.log.warn({ event: 'tunnel_port_lost', subdomain: owner, port, cause: why }, message);
      session.close(1012, 'raw port lost: reconnect');
    });
  }

  /** The live tunnel of `subdomain` on this replica. */
  find(subdomain: string): TunnelSession | undefined {
    return this.live.get(subdomain);
  }

  /** Live tunnels on this replica, by subdomain. */
  sessions(): ReadonlyMap<string, TunnelSession> {
    return this.live;
  }

  /** Raw TCP connections open over all tunnels. */
  get tcpConnections(): number {
    return this.tcpOpen;
  }

  /** Request body bytes v1 tunnels hold while those bodies arrive (`TUNNEL_V1_BODY_BUFFER_BYTES` at most). */
  get v1BodyBytesHeld(): number {
    return this.v1BodyBudget.inUse;
  }

  /** The public URL of a subdomain; empty without `TUNNEL_DOMAIN`. */
  tunnelUrl(subdomain: string): string {
    return this.config.tunnelDomain ? `${this.config.tunnelPublicScheme}://${subdomain}.${this.config.tunnelDomain}` : '';
  }

  /**
   * Claims a subdomain (per-user tunnel limit → 429) and, when TCP tunnels are
   * on, the lowest raw port that binds. Everything is given back if the client
   * goes away meanwhile.
   */
  async reserve(user: string, clientIp: string, signal: GoneSignal): Promise<TunnelReservation> {
    let reservation: TunnelReservation | null = null;
    for (let i = 0; i < SUBDOMAIN_ATTEMPTS && !reservation; i++) {
      const subdomain = newSubdomain();
      const outcome = await this.registry.claim({ subdomain, user, clientIp, createdAt: Date.now() }, this.maxTunnelsPerUser);
      if (outcome === 'user_limit') throw new Refusal(429, 'too many tunnels for this user', 'limit');
      if (outcome === 'ok') reservation = new TunnelReservation(subdomain, user, clientIp, this.registry, this.pool);
    }
    if (!reservation) throw new Refusal(503, 'no free subdomain', 'limit');
    this.pending.add(reservation);
    try {
      if (this.config.tunnelTcpEnabled) await this.bindPort(reservation, signal);
      if (signal.aborted) throw new Refusal(400, 'client went away', 'bad_request');
      return reservation;
    } catch (err) {
      this.pending.delete(reservation);
      await reservation.release();
      throw err;
    }
  }

  /** Gives back a reservation whose handshake never completed. */
  abandon(reservation: TunnelReservation): void {
    this.pending.delete(reservation);
    void reservation.release().catch((err: unknown) => this.log.error({ event: 'tunnel_release_failed', err }, 'releasing a tunnel failed'));
  }

  /** Starts the tunnel on its accepted WebSocket and announces it (`tunnel_ready`). */
  start(ws: WebSocket, reservation: TunnelReservation, lease: Lease, params: TunnelParams): TunnelSession {
    this.pending.delete(reservation);
    const wire = this.createWire(ws, params);
    const info = {
      subdomain: reservation.subdomain,
      user: reservation.user,
      clientIp: reservation.clientIp,
      rawPort: reservation.rawPort,
      tunnelUrl: this.tunnelUrl(reservation.subdomain),
    };
    let cancelMaxAge = UNARMED;
    let untrack: () => void = () => undefined;
    const session = new TunnelSession(
      info,
      wire,
      {
        responseTimeoutMs: this.config.tunnelResponseTimeoutMs,
        maxTcpConns: this.config.maxTunnelTcpConnsPerTunnel,
        tcpGate: this.tcpGate,
        halfClosedIdleMs: this.config.tunnelRequesterStallMs,
      },
      (s, end) => {
        cancelMaxAge();
        untrack();
        this.ended(s, end, reservation, lease);
      },
    );
    this.live.set(info.subdomain, session);
    reservation.attach({
      acceptTcp: (socket) => {
        // Counted once carried, as the tunnel's own tcpConnections counts it: not one closed at once over a cap.
        if (session.acceptTcp(socket)) this.events.emit('tunnel.tcp', { forwarded: false });
      },
    });
    // A client that stopped answering pings ends as keepalive's doing ('keepalive timeout: …'), as a relay does.
    this.keepalive.watch(ws, (reason) => session.timedOut(reason));
    // `terminate`, as for relays: a client that never answers the drain's close frame would otherwise hold the
    // process until ws's 30 s close timeout (past the shutdown deadline), and its tunnel_ended never be logged.
    untrack = this.drain.track({ shutdown: (code, reason) => session.close(code, reason), terminate: () => ws.terminate() });
    cancelMaxAge = armMaxAge(this.config.maxConnectionS, () => session.close(4408, 'maximum connection age reached'));
    session.start();
    this.log.info(
      {
        event: 'tunnel_registered',
        user: info.user,
        subdomain: info.subdomain,
        rawPort: info.rawPort,
        clientIp: info.clientIp,
        protocol: wire.version,
        control: params.control,
        userTunnels: this.countForUser(info.user),
        liveTunnels: this.live.size,
      },
      'tunnel registered',
    );
    this.events.emit('tunnel.opened', { subdomain: info.subdomain, user: info.user, clientIp: info.clientIp, rawPort: info.rawPort });
    return session;
  }

  onApplicationShutdown(): void {
    for (const session of this.live.values()) session.close(1001, 'server shutting down');
    for (const r of this.pending) void r.release();
    this.pending.clear();
  }

  /** The codec of the protocol version the client negotiated (v2 adds its branch here). */
  private createWire(ws: WebSocket, params: TunnelParams): TunnelWire {
    if (params.version === 2) return new V2Wire(ws, { window: this.config.tunnelV2WindowBytes, requestBacklogBytes: CLIENT_BACKLOG_BYTES });
    return new V1Wire(ws, {
      controlBinary: params.control === 'binary',
      inboundStallMs: Math.min(30_000, this.config.pingIntervalMs),
      // Room for two of the largest requests on top of ordinary traffic.
      requestBacklogBytes: Math.max(CLIENT_BACKLOG_BYTES, 2 * v1MaxMessageBytes(this.config.tunnelMaxBodyBytes)),
      bodyBudget: this.v1BodyBudget,
    });
  }

  private async bindPort(reservation: TunnelReservation, signal: GoneSignal): Promise<void> {
    let from = this.pool.min;
    const refusals = new Map<string, number[]>();
    while (!signal.aborted) {
      const port = await this.pool.claim(reservation.subdomain, from);
      if (port === null) break;
      const server = await this.binder.listen(port, this.config.tunnelBindHost, reservation.onTcpConnection, (code) => {
        const ports = refusals.get(code) ?? [];
        if (ports.length < 5) ports.push(port);
        refusals.set(code, ports);
      });
      if (server) {
        reservation.rawPort = port;
        reservation.listener = server;
        break;
      }
      // Held by another program, or not permitted: skip it.
      await this.pool.release(port, reservation.subdomain);
      from = port + 1;
    }
    // An operator must hear why tunnels get no TCP port (rawPort 0): a bad TUNNEL_BIND_HOST or ports below 1024 fail them all.
    if (refusals.size > 0 || (reservation.rawPort === 0 && !signal.aborted)) {
      const reason = refusals.size > 0 ? [...refusals.keys()].join(',') : 'pool_exhausted';
      const suppressed = this.bindWarnings.take(reason);
      if (suppressed !== null) {
        this.log.warn(
          {
            event: 'tunnel_port_bind_failed',
            host: this.config.tunnelBindHost,
            refused: Object.fromEntries(refusals),
            rawPort: reservation.rawPort,
            suppressed,
          },
          reservation.rawPort === 0 ? 'no raw TCP port for this tunnel' : 'some tunnel ports could not be bound',
        );
      }
    }
  }

  private ended(session: TunnelSession, end: TunnelSessionEnd, reservation: TunnelReservation, lease: Lease): void {
    const { info } = session;
    if (this.live.get(info.subdomain) === session) this.live.delete(info.subdomain);
    lease.release();
    void reservation.release().catch((err: unknown) => this.log.error({ event: 'tunnel_release_failed', err }, 'releasing a tunnel failed'));
    this.log.info(
      {
        event: 'tunnel_ended',
        user: info.user,
        subdomain: info.subdomain,
        rawPort: info.rawPort,
        clientIp: info.clientIp,
        httpRequests: end.httpRequests,
        tcpConnections: end.tcpConnections,
        durationMs: end.durationMs,
        closeCode: end.closeCode,
        closeReason: end.closeReason,
        userTunnels: this.countForUser(info.user),
        liveTunnels: this.live.size,
      },
      'tunnel ended',
    );
    this.events.emit('tunnel.closed', {
      subdomain: info.subdomain,
      user: info.user,
      clientIp: info.clientIp,
      rawPort: info.rawPort,
      httpRequests: end.httpRequests,
      tcpConnections: end.tcpConnections,
      durationMs: end.durationMs,
      closeCode: end.closeCode,
      closeReason: end.closeReason,
    });
  }

  private countForUser(user: string): number {
    let n = 0;
    for (const s of this.live.values()) if (s.info.user === user) n++;
    return n;
  }
}
