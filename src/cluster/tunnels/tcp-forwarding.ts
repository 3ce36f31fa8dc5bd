import type { IncomingMessage } from 'node:http';
import type { Server, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { ChurnSet } from '../../common/churn-map.js';
import { WsproxyEvents } from '../../common/events.js';
import { resetSocket } from '../../common/reset-socket.js';
import { wsproxyConfig, type WsproxyConfigType } from '../../config/wsproxy.config.js';
import { DrainService } from '../../lifecycle/drain.service.js';
import { PINO, type Pino } from '../../logging/logging.module.js';
import { matchTunnelHost } from '../../tunnel/http/tunnel-host.js';
import { SUBDOMAIN_RE } from '../../tunnel/state/subdomain.js';
import { TcpPortBinder } from '../../tunnel/tcp/port-binder.js';
import { TunnelService } from '../../tunnel/tunnel.service.js';
import { writeHttpRefusal } from '../../upgrade/raw-response.js';
import { UpgradeRouter } from '../../upgrade/upgrade-router.service.js';
import { CLUSTER_AUTH_HEADER, signClusterRequest } from '../internal-auth.js';
import { ClusterTunnelState, type AllocatedPort, type ClusterTunnelRecord } from './cluster-tunnel-state.js';
import { internalTcpPath, TCP_UPGRADE_PROTOCOL } from './internal-headers.js';
import { ownerUpgradeRequest, signedUpgrade, spliceToOwner } from './internal-upgrade.js';

const TCP_PATH_RE = /^\/_cluster\/tunnels\/([^/?]+)\/tcp$/;

/** How long the entry replica waits for the owner to accept a piped connection. */
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * Raw TCP ports across replicas.
 *
 * Entry side: every replica listens (on its `TUNNEL_BIND_HOST`) on every port
 * allocated to a tunnel held by another replica, following the cluster-wide
 * listing each tunnel heartbeat brings (and at once after a port changes
 * hands, via pub/sub). A connection there is piped to the owner over an HTTP
 * upgrade to `/_cluster/tunnels/<subdomain>/tcp`, signed with `CLUSTER_SECRET`;
 * the bytes then flow untouched both ways, half-close included.
 *
 * Owner side: that upgrade (401 without the signature, 403 with a bad one, 404
 * when the tunnel is not here) becomes a connection on the tunnel's port, with
 * the tunnel's own limits.
 */
@Injectable()
export class TunnelTcpForwarding implements OnModuleInit, OnApplicationShutdown {
  /** Ports this replica listens on for tunnels held elsewhere. */
  private readonly listeners = new Map<number, Server>();
  private readonly binding = new Set<number>();
  private readonly holders = new Map<number, ClusterTunnelRecord>();
  private readonly piped = new ChurnSet<Socket>();
  private stopped = false;

  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    private readonly state: ClusterTunnelState,
    private readonly tunnels: TunnelService,
    private readonly events: WsproxyEvents,
    private readonly binder: TcpPortBinder,
    upgrades: UpgradeRouter,
    @Inject(PINO) private readonly log: Pino,
    private readonly drain: DrainService,
  ) {
    upgrades.registerHostMatcher({ match: (req) => this.matchInternal(req) });
  }

  onModuleInit(): void {
    if (this.config.tunnelTcpEnabled) this.state.onPorts((ports) => this.follow(ports));
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    for (const s of this.piped.values()) s.destroy();
    await Promise.all([...this.listeners.values()].map((srv) => new Promise<void>((r) => srv.close(() => r()))));
    this.listeners.clear();
  }

  /** Ports this replica listens on for tunnels held by other replicas (tests, diagnostics). */
  followedPorts(): number[] {
    return [...this.listeners.keys()].sort((a, b) => a - b);
  }

  /** Reconciles the listeners with the cluster-wide listing. */
  private follow(ports: readonly AllocatedPort[]): void {
    if (this.stopped) return;
    const wanted = new Map<number, ClusterTunnelRecord>();
    for (const p of ports) if (p.tunnel.replica !== this.state.replicaId) wanted.set(p.port, p.tunnel);
    this.holders.clear();
    for (const [port, rec] of wanted) this.holders.set(port, rec);
    for (const [port, server] of this.listeners) {
      if (wanted.has(port)) continue;
      this.listeners.delete(port);
      server.close();
    }
    for (const port of wanted.keys()) {
      if (this.listeners.has(port) || this.binding.has(port)) continue;
      this.binding.add(port);
      let refusal = '';
      void this.binder.listen(port, this.config.tunnelBindHost, (socket) => this.entry(port, socket), (code) => (refusal = code)).then((server) => {
        this.binding.delete(port);
        if (!server) {
          this.log.warn({ event: 'cluster_port_bind_failed', port, host: this.config.tunnelBindHost, code: refusal }, 'cannot listen on a tunnel port held by another replica; retrying at the next beat');
          return;
        }
        if (this.stopped || !this.holders.has(port) || this.listeners.has(port)) return void server.close();
        this.listeners.set(port, server);
      });
    }
  }

  /** A connection on a port whose tunnel is on another replica: piped to the owner. */
  private entry(port: number, socket: Socket): void {
    socket.on('error', () => socket.destroy());
    const holder = this.holders.get(port);
    if (!holder || !holder.url) return void socket.destroy();
    this.events.emit('tunnel.tcp', { forwarded: true });
    socket.pause();
    const handle = this.piped.add(socket);
    socket.once('close', () => this.piped.delete(handle));
    // Drained like the owner's own tunnel connections: it runs on for the drain, then is cut (reset, not a FIN).
    socket.once('close', this.drain.track({ shutdown: () => resetSocket(socket) }));
    const path = internalTcpPath(holder.subdomain);
    const req = ownerUpgradeRequest(holder.url, path, [
      'connection',
      'Upgrade',
      'upgrade',
      TCP_UPGRADE_PROTOCOL,
      CLUSTER_AUTH_HEADER,
      signClusterRequest(this.config.clusterSecret, 'GET', path),
    ]);
    const timer = setTimeout(() => req.destroy(new Error('owner did not accept in time')), CONNECT_TIMEOUT_MS);
    timer.unref();
    socket.once('close', () => req.destroy());
    req.on('upgrade', (_res: IncomingMessage, upstream: Socket, head: Buffer) => {
      clearTimeout(timer);
      spliceToOwner(socket, upstream, head);
    });
    req.on('response', (res: IncomingMessage) => {
      clearTimeout(timer);
      res.resume();
      this.log.debug({ event: 'cluster_tcp_refused', port, status: res.statusCode }, 'tunnel owner refused a piped connection');
      socket.destroy();
    });
    req.on('error', () => {
      clearTimeout(timer);
      socket.destroy();
    });
    req.end();
  }

  /** Claims `/_cluster/tunnels/<subdomain>/tcp` upgrades (never on a tunnel host). */
  private matchInternal(req: IncomingMessage): ((req: IncomingMessage, socket: Duplex, head: Buffer) => void) | null {
    if (matchTunnelHost(req.headers.host, this.config.tunnelDomain).kind !== 'other') return null;
    const m = TCP_PATH_RE.exec(req.url ?? '');
    if (!m) return null;
    return (_req, socket, head) => this.owner(req, m[1], socket, head);
  }

  private owner(req: IncomingMessage, subdomain: string, socket: Duplex, head: Buffer): void {
    if (!signedUpgrade(this.config.clusterSecret, req, socket)) return;
    if ((req.headers.upgrade ?? '').toLowerCase() !== TCP_UPGRADE_PROTOCOL) return writeHttpRefusal(socket, 400, `Upgrade must be ${TCP_UPGRADE_PROTOCOL}`);
    const session = SUBDOMAIN_RE.test(subdomain) ? this.tunnels.find(subdomain) : undefined;
    if (!session?.live || !session.info.rawPort) return writeHttpRefusal(socket, 404, 'tunnel not found');
    const s = socket as Socket;
    s.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${TCP_UPGRADE_PROTOCOL}\r\n\r\n`);
    if (head.length > 0) s.unshift(head);
    session.acceptTcp(s);
  }
}
