import { Inject, Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import { WebSocket } from 'ws';
import { isRefusal } from '../../common/refusal.js';
import { wsproxyConfig, type WsproxyConfigType } from '../../config/wsproxy.config.js';
import { PINO, type Pino } from '../../logging/logging.module.js';
import { TunnelSession } from '../../tunnel/core/tunnel-session.js';
import type { RemoteTunnelHttp, RemoteTunnelRequest } from '../../tunnel/http/remote-tunnel.js';
import { answerPlain } from '../../tunnel/http/response-sink.js';
import { V2_MAX_FRAME_BYTES } from '../../tunnel/protocol/v2.js';
import { V2Wire } from '../../tunnel/v2/v2-wire.js';
import { CLUSTER_AUTH_HEADER, signClusterRequest } from '../internal-auth.js';
import { MUX_PATH, MUX_PLAIN_HEADER, MUX_SUBDOMAIN_HEADER } from './cluster-mux.js';
import { ClusterTunnelState } from './cluster-tunnel-state.js';
import { replicaEndpoint } from './internal-headers.js';

/** Extra time the entry replica gives the owner beyond the tunnel's own response timeout (the owner answers 504 first). */
export const OWNER_GRACE_MS = 5000;

/** Time to open a channel to an owner. */
const CONNECT_TIMEOUT_MS = 5000;

/** The channels never carry TCP: a gate that admits nothing. */
const NO_TCP = { tryAcquire: () => false, release: () => undefined };

/**
 * HTTP for a subdomain whose tunnel lives on another replica: looks the owner
 * up (Redis, cached for half a heartbeat) and sends the request as a stream on
 * this replica's channel to the owner (`cluster-mux.ts`), opened on first use
 * and reused by every request after it. The request is served through the
 * channel exactly as through a local tunnel (body limit 413, header hygiene,
 * response checks); a refusal the owner makes itself is answered as it would
 * have answered it. Owner unreachable → 502 (and its route is forgotten);
 * no answer within the tunnel response timeout plus a grace → 504; a channel
 * that drops, or misses a ping for a heartbeat, fails its requests in flight
 * with 502.
 */
@Injectable()
export class ClusterMuxClient implements RemoteTunnelHttp, BeforeApplicationShutdown {
  private readonly channels = new Map<string, Promise<TunnelSession>>();
  private closing = false;

  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    private readonly state: ClusterTunnelState,
    @Inject(PINO) private readonly log: Pino,
  ) {}

  /** Owners this replica has a channel to, or is opening one to (tests, diagnostics). */
  get channelCount(): number {
    return this.channels.size;
  }

  forward(r: RemoteTunnelRequest): void {
    r.req.pause();
    this.state.route(r.subdomain).then(
      (record) => {
        if (r.res.destroyed) return;
        if (!record || record.replica === this.state.replicaId || !record.url) return answerPlain(r.res, 404, 'tunnel not found');
        this.channel(record.url).then(
          (session) => {
            if (r.res.destroyed) return;
            r.onForwarded();
            r.serveThrough(session, [[MUX_SUBDOMAIN_HEADER, r.subdomain]], MUX_PLAIN_HEADER);
            r.req.resume();
          },
          (err: Error) => {
            this.log.warn({ event: 'cluster_forward_failed', subdomain: r.subdomain, owner: record.url, err: err.message }, 'forwarding to the tunnel owner failed');
            this.state.forgetRoute(r.subdomain);
            answerPlain(r.res, 502, 'tunnel owner unreachable');
          },
        );
      },
      (err: unknown) => {
        if (isRefusal(err)) return answerPlain(r.res, err.status, err.reason);
        answerPlain(r.res, 503, 'cluster state unavailable');
      },
    );
  }

  beforeApplicationShutdown(): void {
    this.closing = true;
    for (const channel of this.channels.values()) channel.then((s) => s.close(1001, 'replica shutting down'), () => undefined);
    this.channels.clear();
  }

  /** The open channel to the replica advertised at `ownerUrl`, opened when there is none. */
  private channel(ownerUrl: string): Promise<TunnelSession> {
    let channel = this.channels.get(ownerUrl);
    if (!channel) {
      channel = this.open(ownerUrl);
      this.channels.set(ownerUrl, channel);
      channel.catch(() => {
        if (this.channels.get(ownerUrl) === channel) this.channels.delete(ownerUrl);
      });
    }
    return channel;
  }

  private open(ownerUrl: string): Promise<TunnelSession> {
    if (this.closing) return Promise.reject(new Error('replica shutting down'));
    const owner = replicaEndpoint(ownerUrl);
    const ws = new WebSocket(`${owner.https ? 'wss' : 'ws'}://${owner.hostHeader}${MUX_PATH}`, {
      perMessageDeflate: false,
      maxPayload: V2_MAX_FRAME_BYTES,
      handshakeTimeout: CONNECT_TIMEOUT_MS,
      followRedirects: false,
      headers: { [CLUSTER_AUTH_HEADER]: signClusterRequest(this.config.clusterSecret, 'GET', MUX_PATH) },
    });
    return new Promise<TunnelSession>((resolve, reject) => {
      const fail = (err: Error): void => {
        ws.removeAllListeners('open');
        ws.terminate();
        reject(err);
      };
      ws.on('error', (err: Error) => fail(err));
      ws.once('unexpected-response', (_req, res) => {
        res.resume();
        fail(new Error(`owner answered ${res.statusCode ?? 0}`));
      });
      ws.once('open', () => {
        ws.removeAllListeners('error');
        ws.on('error', () => ws.terminate());
        // A channel whose owner stopped answering (a partition, a lost node) is dropped
        // within two heartbeats, and its requests fail with 502, instead of waiting for TCP.
        let answered = true;
        const keepalive = setInterval(() => {
          if (!answered) return void ws.terminate();
          answered = false;
          ws.ping();
        }, this.config.clusterHeartbeatMs);
        keepalive.unref();
        ws.on('pong', () => void (answered = true));
        ws.once('close', () => clearInterval(keepalive));
        const session = new TunnelSession(
          { subdomain: '', user: '', clientIp: '', rawPort: 0, tunnelUrl: '' },
          new V2Wire(ws, { window: this.config.tunnelV2WindowBytes }),
          { responseTimeoutMs: this.config.tunnelResponseTimeoutMs + OWNER_GRACE_MS, maxTcpConns: 0, tcpGate: NO_TCP },
          (ended) => {
            const current = this.channels.get(ownerUrl);
            if (current) void current.then((s) => s === ended && this.channels.delete(ownerUrl), () => undefined);
          },
        );
        session.start();
        resolve(session);
      });
    });
  }
}
