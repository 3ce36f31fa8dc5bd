import { Inject, Injectable } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { wsproxyConfig, type WsproxyConfigType } from '../../config/wsproxy.config.js';
import { answerPlain } from '../../tunnel/http/response-sink.js';
import { matchTunnelHost } from '../../tunnel/http/tunnel-host.js';
import { TunnelHttpRouter } from '../../tunnel/http/tunnel-http.router.js';
import { FrontRequestHandlers } from '../../upgrade/front-requests.js';
import { CLUSTER_AUTH_HEADER, verifyClusterRequest } from '../internal-auth.js';
import { readForwarded } from './internal-headers.js';

const HTTP_PATH_RE = /^\/_cluster\/tunnels\/([^/?]+)\/http(?:\?(.*))?$/;

/**
 * The owner's half of HTTP forwarded between replicas: a signed request to
 * `/_cluster/tunnels/<subdomain>/http?path=…` (401 without the signature, 403
 * with a bad one) for one of this replica's tunnels, answered exactly as if it
 * had arrived here. A front request handler rather than a controller: it is on the
 * path of every request through a non-owner replica, and Nest's router,
 * guards and interceptors cost more than the forwarding itself. Never claimed
 * on a tunnel host.
 */
@Injectable()
export class TunnelHttpEndpoint {
  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    private readonly router: TunnelHttpRouter,
    front: FrontRequestHandlers,
  ) {
    front.add((req, res) => this.handle(req, res));
  }

  /** True when the request is a forwarded one (and answered here). */
  private handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = req.url ?? '';
    const m = url.startsWith('/_cluster/tunnels/') ? HTTP_PATH_RE.exec(url) : null;
    if (!m || matchTunnelHost(req.headers.host, this.config.tunnelDomain).kind !== 'other') return false;
    this.serve(req, res, url, m[1]!, m[2]);
    return true;
  }

  private serve(req: IncomingMessage, res: ServerResponse, url: string, subdomain: string, query: string | undefined): void {
    const auth = verifyClusterRequest(this.config.clusterSecret, req.headers[CLUSTER_AUTH_HEADER], req.method ?? '', url);
    if (auth === 'missing') return answerPlain(res, 401, 'cluster authentication required');
    if (auth === 'invalid') return answerPlain(res, 403, 'cluster authentication failed');
    const fwd = readForwarded(req, subdomain, new URLSearchParams(query ?? ''));
    if (!fwd) return answerPlain(res, 400, 'bad forwarded request');
    this.router.serveForwarded(req, res, subdomain, fwd);
  }
}
