import { Agent, request, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { isRefusal } from '../../common/refusal.js';
import { wsproxyConfig, type WsproxyConfigType } from '../../config/wsproxy.config.js';
import { PINO, type Pino } from '../../logging/logging.module.js';
import type { RemoteTunnelHttp, RemoteTunnelRequest } from '../../tunnel/http/remote-tunnel.js';
import { answerPlain } from '../../tunnel/http/response-sink.js';
import { ClusterTunnelState } from './cluster-tunnel-state.js';
import { endToEndHeaders, forwardedHeaders, internalHttpPath, replicaEndpoint } from './internal-headers.js';

/** Extra time the entry replica gives the owner beyond the tunnel's own response timeout (the owner answers 504 first). */
export const OWNER_GRACE_MS = 5000;

/**
 * HTTP for a subdomain whose tunnel lives on another replica: looks the owner
 * up in Redis and forwards the request to its advertise URL under
 * `/_cluster/tunnels/<subdomain>/http`, signed with `CLUSTER_SECRET`; the
 * owner's answer (status, headers, body) is passed back as it comes. Body
 * limit as for local tunnels (413); no answer within the tunnel response
 * timeout plus a grace → 504; owner unreachable → 502.
 */
@Injectable()
export class TunnelHttpForwarder implements RemoteTunnelHttp, OnApplicationShutdown {
  private readonly agent = new Agent({ keepAlive: true, maxFreeSockets: 64 });
  private readonly httpsAgent = new HttpsAgent({ keepAlive: true, maxFreeSockets: 64 });

  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    private readonly state: ClusterTunnelState,
    @Inject(PINO) private readonly log: Pino,
  ) {}

  forward(r: RemoteTunnelRequest): void {
    r.req.pause();
    this.state.route(r.subdomain).then(
      (record) => {
        if (r.res.destroyed) return;
        if (!record || record.replica === this.state.replicaId || !record.url) return answerPlain(r.res, 404, 'tunnel not found');
        this.send(r, record.url);
      },
      (err: unknown) => {
        if (isRefusal(err)) return answerPlain(r.res, err.status, err.reason);
        answerPlain(r.res, 503, 'cluster state unavailable');
      },
    );
  }

  onApplicationShutdown(): void {
    this.agent.destroy();
    this.httpsAgent.destroy();
  }

  private send(r: RemoteTunnelRequest, ownerUrl: string): void {
    const { req, res } = r;
    const owner = replicaEndpoint(ownerUrl);
    const path = internalHttpPath(r.subdomain, r.path);
    const method = req.method ?? 'GET';
    const upstream = (owner.https ? httpsRequest : request)({
      host: owner.host,
      port: owner.port,
      method,
      path,
      headers: ['host', owner.hostHeader, ...forwardedHeaders(req, r.clientIp, this.config.clusterSecret, method, path)],
      agent: owner.https ? this.httpsAgent : this.agent,
    });
    r.onForwarded();
    let answered = false;
    const timer = setTimeout(() => {
      if (answered) return;
      upstream.destroy();
      answerPlain(res, 504, 'tunnel did not answer in time');
    }, this.config.tunnelResponseTimeoutMs + OWNER_GRACE_MS);
    timer.unref();

    upstream.on('response', (up: IncomingMessage) => {
      answered = true;
      clearTimeout(timer);
      if (res.destroyed) return up.destroy();
      res.statusCode = up.statusCode ?? 502;
      const raw = endToEndHeaders(up.rawHeaders);
      for (let i = 0; i + 1 < raw.length; i += 2) {
        try {
          res.appendHeader(raw[i], raw[i + 1]);
        } catch {
          // Node refuses it here as it would have at the owner.
        }
      }
      up.on('error', () => res.destroy());
      up.pipe(res);
      res.once('close', () => {
        if (!res.writableFinished) up.destroy();
      });
    });
    upstream.on('error', (err) => {
      clearTimeout(timer);
      if (answered) return void res.destroy();
      answered = true;
      this.log.warn({ event: 'cluster_forward_failed', subdomain: r.subdomain, owner: ownerUrl, err: err.message }, 'forwarding to the tunnel owner failed');
      this.state.forgetRoute(r.subdomain);
      answerPlain(res, 502, 'tunnel owner unreachable');
    });
    res.once('close', () => {
      if (!answered) upstream.destroy();
    });

    // The body, with backpressure; beyond TUNNEL_MAX_BODY_BYTES, 413 as for a local tunnel.
    const max = this.config.tunnelMaxBodyBytes;
    let size = 0;
    let refused = false;
    req.on('data', (chunk: Buffer) => {
      if (refused) return;
      size += chunk.length;
      if (size > max) {
        refused = true;
        if (!answered) {
          answered = true;
          clearTimeout(timer);
          answerPlain(res, 413, 'request body too large', true);
        }
        upstream.destroy();
        return;
      }
      if (!upstream.write(chunk)) req.pause();
    });
    upstream.on('drain', () => req.resume());
    req.on('end', () => {
      if (!refused) upstream.end();
    });
    req.resume();
  }
}
