import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Inject, Injectable } from '@nestjs/common';
import { wsproxyConfig, type WsproxyConfigType } from '../../config/wsproxy.config.js';
import { matchTunnelHost } from '../../tunnel/http/tunnel-host.js';
import { TunnelHttpRouter } from '../../tunnel/http/tunnel-http.router.js';
import { writeHttpRefusal } from '../../upgrade/raw-response.js';
import { UpgradeRouter } from '../../upgrade/upgrade-router.service.js';
import type { RawUpgradeHandler } from '../../upgrade/upgrade-route.js';
import { readForwarded } from './internal-headers.js';
import { signedUpgrade } from './internal-upgrade.js';

const WS_PATH_RE = /^\/_cluster\/tunnels\/([^/?]+)\/ws(?:\?(.*))?$/;

/**
 * The owner's half of WebSocket upgrades forwarded between replicas: a signed
 * upgrade to `/_cluster/tunnels/<subdomain>/ws?path=…` (401 without the
 * signature, 403 with a bad one) for one of this replica's tunnels is served
 * exactly as if the requester had sent it here, with the requester's path,
 * Host, headers and IP (per-IP slot included). Never claimed on a tunnel host.
 */
@Injectable()
export class TunnelWebSocketEndpoint {
  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    private readonly router: TunnelHttpRouter,
    upgrades: UpgradeRouter,
  ) {
    upgrades.registerHostMatcher({ match: (req) => this.match(req) });
  }

  private match(req: IncomingMessage): RawUpgradeHandler | null {
    if (matchTunnelHost(req.headers.host, this.config.tunnelDomain).kind !== 'other') return null;
    const m = WS_PATH_RE.exec(req.url ?? '');
    if (!m) return null;
    return (_req, socket, head) => this.serve(req, m[1], new URLSearchParams(m[2] ?? ''), socket, head);
  }

  private serve(req: IncomingMessage, subdomain: string, query: URLSearchParams, socket: Duplex, head: Buffer): void {
    if (!signedUpgrade(this.config.clusterSecret, req, socket)) return;
    const fwd = readForwarded(req, subdomain, query);
    if (!fwd) return writeHttpRefusal(socket, 400, 'bad forwarded request');
    this.router.serveForwardedUpgrade(req, socket, head, subdomain, fwd);
  }
}
