import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { WebSocket } from 'ws';
import { LogThrottle } from '../../common/log-throttle.js';
import { isRefusal } from '../../common/refusal.js';
import { wsproxyConfig, type WsproxyConfigType } from '../../config/wsproxy.config.js';
import { PINO, type Pino } from '../../logging/logging.module.js';
import { TunnelSession } from '../../tunnel/core/tunnel-session.js';
import type { RemoteTunnelHttp, RemoteTunnelRequest } from '../../tunnel/http/remote-tunnel.js';
import { answerPlain } from '../../upgrade/raw-response.js';
import { V2_MAX_FRAME_BYTES } from '../../tunnel/protocol/v2.js';
import { V2Wire } from '../../tunnel/v2/v2-wire.js';
import { CLUSTER_AUTH_HEADER, signClusterRequest } from '../internal-auth.js';
import { MUX_PATH, MUX_PLAIN_HEADER, MUX_SUBDOMAIN_HEADER, channelKeepalive } from './cluster-mux.js';
import { ClusterTunnelState } from './cluster-tunnel-state.js';
import { replicaEndpoint } from './internal-headers.js';

/** Extra time the entry replica gives the owner beyond the tunnel's own response timeout (the owner answers 504 first). */
export const OWNER_GRACE_MS = 5000;

/** Time to open a channel to an owner. */
const CONNECT_TIMEOUT_MS = 5000;

/**
 * Requests after which a channel is retired (new requests open another; it
 * closes once idle): stream ids are 32-bit and never reused.
 */
const REQUESTS_PER_CHANNEL = 2 ** 31;

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
 * that drops, or stays silent for three heartbeats (pinged every one), fails
 * its requests in flight with 502 (`tunnel owner disconnected`, `tunnel owner
 * stopped responding`).
 */
@Injectable()
export class ClusterMuxClient implements RemoteTunnelHttp, OnApplicationShutdown {
  private readonly channels = new Map<string, Promise<TunnelSession>>();
  private readonly served = new WeakMap<TunnelSession, number>();
  private closing = false;

  /** One failure line per owner per interval: every request for a dead owner's tunnels fails alike. */
  private readonly failures = new LogThrottle();

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
            this.count(record.url!, session);
            r.onForwarded();
            r.serveThrough(session, [[MUX_SUBDOMAIN_HEADER, r.subdomain]], {
              header: MUX_PLAIN_HEADER,
              // The owner no longer holds it (it moved, or ended): look it up afresh next time.
              onRefusal: (status) => status === 404 && this.state.forgetRoute(r.subdomain),
            });
            r.req.resume();
          },
          (err: Error) => {
            const suppressed = this.failures.take(record.url!);
            if (suppressed !== null) {
              this.log.warn({ event: 'cluster_forward_failed', subdomain: r.subdomain, owner: record.url, err: err.message, suppressed }, 'forwarding to the tunnel owner failed');
            }
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

  /**
   * After the HTTP server has closed, so requests in flight on a channel (the
   * server's close waits for them) finish first, through the drain too.
   */
  onApplicationShutdown(): void {
    this.closeChannels();
  }

  private closeChannels(): void {
    this.closing = true;
    for (const channel of this.channels.values()) channel.then((s) => s.close(1001, 'replica shutting down'), () => undefined);
    this.channels.clear();
  }

  /** Counts a request on `session`; past REQUESTS_PER_CHANNEL the channel is retired and closed once idle. */
  private count(ownerUrl: string, session: TunnelSession): void {
    const n = (this.served.get(session) ?? 0) + 1;
    this.served.set(session, n);
    if (n < REQUESTS_PER_CHANNEL) return;
    void this.channels.get(ownerUrl)?.then((s) => s === session && this.channels.delete(ownerUrl), () => undefined);
    const retire = setInterval(() => {
      if (session.counts().http > 0 && session.live) return;
      clearInterval(retire);
      session.close(1000, 'channel retired');
    }, 1000);
    retire.unref();
  }

  /** The open channel to the replica advertised at `ownerUrl`, opened when there is none. */
  private channel(ownerUrl: string): Promise<TunnelSession> {
    let channel = this.channels.get(ownerUrl);
    if (!channel) {
      channel = this.open(ownerUrl);
      this.channels.set(ownerUrl, channel);
      // A failed open is remembered for a heartbeat: requests meanwhile get 502 without a new attempt each.
      channel.catch(() => {
        const forget = setTimeout(() => {
          if (this.channels.get(ownerUrl) === channel) this.channels.delete(ownerUrl);
        }, Math.max(1000, this.config.clusterHeartbeatMs));
        forget.unref();
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
        const session = new TunnelSession(
          { subdomain: '', user: '', clientIp: '', rawPort: 0, tunnelUrl: '' },
          new V2Wire(ws, { window: this.config.tunnelV2WindowBytes }),
          {
            responseTimeoutMs: this.config.tunnelResponseTimeoutMs + OWNER_GRACE_MS,
            maxTcpConns: 0,
            tcpGate: NO_TCP,
            halfClosedIdleMs: this.config.tunnelRequesterStallMs,
            peer: 'tunnel owner',
          },
          (ended) => {
            const current = this.channels.get(ownerUrl);
            if (current) void current.then((s) => s === ended && this.channels.delete(ownerUrl), () => undefined);
          },
        );
        // A channel whose owner stopped answering (a partition, a lost node) is dropped after a few silent
        // heartbeats, and its requests fail with 502 `tunnel owner stopped responding`, instead of waiting for TCP.
        const { pingEveryMs, silentAfterMs } = channelKeepalive(this.config.clusterHeartbeatMs);
        let lastSeen = Date.now();
        const alive = (): void => void (lastSeen = Date.now());
        ws.on('pong', alive);
        ws.on('message', alive);
        const keepalive = setInterval(() => {
          if (Date.now() - lastSeen <= silentAfterMs) return ws.ping();
          session.timedOut('tunnel owner silent');
          ws.terminate();
        }, pingEveryMs);
        keepalive.unref();
        ws.once('close', () => clearInterval(keepalive));
        session.start();
        resolve(session);
      });
    });
  }
}
