import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { LogThrottle } from '../../common/log-throttle.js';
import { ChurnSet } from '../../common/churn-map.js';
import { WsproxyEvents } from '../../common/events.js';
import { resetSocket } from '../../common/reset-socket.js';
import { isRefusal, statusText } from '../../common/refusal.js';
import { wsproxyConfig, type WsproxyConfigType } from '../../config/wsproxy.config.js';
import { DrainService } from '../../lifecycle/drain.service.js';
import { PINO, type Pino } from '../../logging/logging.module.js';
import type { RemoteTunnelUpgrade, RemoteTunnelWebSocket } from '../../tunnel/http/remote-tunnel.js';
import { checkHandshake } from '../../upgrade/handshake.js';
import { SocketGoneSignal } from '../../upgrade/client-gone.js';
import { writeHttpRefusal } from '../../upgrade/raw-response.js';
import { ClusterTunnelState } from './cluster-tunnel-state.js';
import { endToEndHeaders, forwardedHeaders, internalWebSocketPath } from './internal-headers.js';
import { ownerUpgradeRequest, spliceToOwner } from './internal-upgrade.js';
import { OWNER_GRACE_MS } from './cluster-mux.client.js';

/** How long a requester may take to read a relayed refusal before its socket is destroyed. */
const REFUSAL_LINGER_MS = 5000;

/**
 * WebSocket upgrades for a subdomain whose tunnel lives on another replica
 * (the entry's side): looks the owner up in Redis and sends it the upgrade at
 * `/_cluster/tunnels/<subdomain>/ws`, signed with `CLUSTER_SECRET`, with the
 * requester's handshake and end-to-end headers, Host and IP. The owner
 * completes the handshake with the requester's key; its 101 is passed back as
 * received and the two connections are piped both ways (frames untouched).
 * Any other answer (404, 429, 501, the origin's refusal, …) is relayed with
 * its body. No owner → 404; Redis unreachable → 503; owner unreachable → 502;
 * no answer within the tunnel response timeout plus a grace → 504.
 */
@Injectable()
export class TunnelWebSocketForwarder implements RemoteTunnelWebSocket, OnApplicationShutdown {
  /** Requesters' sockets from the moment their upgrade is sent to an owner until they close. */
  private readonly open = new ChurnSet<Duplex>();

  /** One failure line per owner per interval (see ClusterMuxClient). */
  private readonly failures = new LogThrottle();

  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    private readonly state: ClusterTunnelState,
    private readonly events: WsproxyEvents,
    @Inject(PINO) private readonly log: Pino,
    private readonly drain: DrainService,
  ) {}

  forward(u: RemoteTunnelUpgrade): void {
    const { req, socket } = u;
    // What the owner would refuse anyway costs no lookup.
    const problem = checkHandshake(req) ?? (req.url?.startsWith('/') ? null : 'bad request target');
    if (problem) return this.refuse(u, 400, problem);
    socket.once('close', u.release);
    this.state.route(u.subdomain).then(
      (record) => {
        if (socket.destroyed) return;
        if (!record || record.replica === this.state.replicaId || !record.url) return this.refuse(u, 404, 'tunnel not found');
        this.send(u, record.url);
      },
      (err: unknown) => (isRefusal(err) ? this.refuse(u, err.status, err.reason) : this.refuse(u, 503, 'cluster state unavailable')),
    );
  }

  onApplicationShutdown(): void {
    for (const s of this.open.values()) s.destroy();
  }

  /** Refused here (no owner to forward to): counted by its status, as a plain request's refusal is; nothing crossed replicas. */
  private refuse(u: RemoteTunnelUpgrade, status: number, reason: string): void {
    u.release();
    this.events.emit('tunnel.http', { status, forwarded: false });
    writeHttpRefusal(u.socket, status, reason);
  }

  private send(u: RemoteTunnelUpgrade, ownerUrl: string): void {
    const { req, socket } = u;
    const path = internalWebSocketPath(u.subdomain, req.url ?? '/');
    const upstreamReq = ownerUpgradeRequest(ownerUrl, path, [
      'connection',
      'Upgrade',
      'upgrade',
      'websocket',
      ...forwardedHeaders(req, u.clientIp, this.config.clusterSecret, 'GET', path),
    ]);
    /** What the requester got (metrics): 499 while nothing was answered. */
    let status = 499;
    let answered = false;
    const settle = (): void => {
      answered = true;
      clearTimeout(timer);
      u.release();
    };
    const timer = setTimeout(() => {
      settle();
      status = 504;
      upstreamReq.destroy();
      writeHttpRefusal(socket, 504, 'tunnel did not answer in time');
    }, this.config.tunnelResponseTimeoutMs + OWNER_GRACE_MS);
    timer.unref();
    const handle = this.open.add(socket);
    // Read while the owner's answer is awaited, or a requester that left would hold its slot until the timeout.
    const gone = new SocketGoneSignal(socket);
    gone.addEventListener('abort', () => {
      this.open.delete(handle);
      if (!answered) settle();
      upstreamReq.destroy();
      this.events.emit('tunnel.http', { status, forwarded: true });
    });

    upstreamReq.on('upgrade', (res: IncomingMessage, upstream: Socket, head: Buffer) => {
      if (answered) return void upstream.destroy();
      settle();
      if (socket.destroyed) return void upstream.destroy();
      status = 101;
      socket.write(responseHead(res.statusCode ?? 101, res.statusMessage ?? '', res.rawHeaders));
      const requesterHead = gone.releaseInto(u.head);
      if (requesterHead.length > 0) upstream.write(requesterHead);
      // Drained like the owner's own connections: it runs on, and is cut at the drain's end (only bytes pass here, no frames).
      socket.once('close', this.drain.track({ shutdown: () => resetSocket(socket) }));
      spliceToOwner(socket, upstream, head);
    });
    upstreamReq.on('response', (res: IncomingMessage) => {
      if (answered) return void res.destroy();
      settle();
      status = res.statusCode ?? 502;
      this.relay(socket, res);
    });
    upstreamReq.on('error', (err) => {
      if (answered) return;
      settle();
      status = 502;
      const suppressed = this.failures.take(ownerUrl);
      if (suppressed !== null) {
        this.log.warn(
          { event: 'cluster_forward_failed', subdomain: u.subdomain, owner: ownerUrl, err: err.message, suppressed },
          'forwarding a WebSocket upgrade to the tunnel owner failed',
        );
      }
      this.state.forgetRoute(u.subdomain);
      writeHttpRefusal(socket, 502, 'tunnel owner unreachable');
    });
    upstreamReq.end();
  }

  /** The owner's refusal, status and body, then the requester's connection is closed. */
  private relay(socket: Duplex, res: IncomingMessage): void {
    const status = res.statusCode ?? 502;
    const headers = [...endToEndHeaders(res.rawHeaders), 'connection', 'close'];
    socket.write(responseHead(status, res.statusMessage || statusText(status), headers));
    // A refusal cut short is reset, not ended: a FIN would pass its prefix for the whole.
    res.on('error', () => resetSocket(socket));
    res.once('close', () => {
      if (!res.complete) resetSocket(socket);
    });
    res.once('end', () => setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS).unref());
    socket.once('close', () => res.destroy());
    res.pipe(socket);
  }
}

/** An HTTP/1.1 response head with `rawHeaders` as given. */
function responseHead(status: number, message: string, rawHeaders: readonly string[]): string {
  const lines = [`HTTP/1.1 ${status} ${message}`];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) lines.push(`${rawHeaders[i]}: ${rawHeaders[i + 1]}`);
  return lines.join('\r\n') + '\r\n\r\n';
}
